"""Machine-readable results of a benchmark, for `bench/report.py` (`make bench`).

A benchmark still prints its figures and, last, its ratio; it also calls `write_result(...)`, which
writes a small JSON file when the environment variable SHIPMATE_BENCH_JSON names one (report.py sets
it for each benchmark it runs) and does nothing otherwise.

    from result import Figure, write_result      # bench/ is the script's directory
    write_result("pod_startup", [Figure("pod start p50, one by one", ours, floor, "ms", "≤ 1.5")],
                 series={"ours one by one (ms)": [...]})
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field

ENV = "SHIPMATE_BENCH_JSON"


@dataclass
class Figure:
    """One row of the report: `value` against its `baseline` (the floor measured in the same run), or against
    a fixed limit when `baseline` is None and the target is absolute (e.g. RSS ≤ 120 MiB)."""
    name: str
    value: float
    baseline: float | None
    unit: str
    target: str = ""                 # "≤ 1.5" (a ratio) or "≤ 120 MiB" (absolute); "" = no target
    ratio: float | None = None       # value / baseline unless given
    met: bool | None = None          # computed from target unless given
    baseline_label: str = "floor"

    def __post_init__(self) -> None:
        if self.ratio is None and self.baseline:
            self.ratio = self.value / self.baseline
        if self.met is None and self.target:
            self.met = target_met(self.target, self.value, self.ratio)


def target_met(target: str, value: float, ratio: float | None) -> bool | None:
    """`≤ 1.5` / `≥ 0.7` compare the ratio; with a unit (`≤ 120 MiB`, `≤ 2 %`) they compare the value."""
    parts = target.replace("<=", "≤").replace(">=", "≥").split()
    if len(parts) < 2 or parts[0] not in ("≤", "≥"):
        return None
    limit = float(parts[1])
    subject = value if len(parts) > 2 else ratio
    if subject is None:
        return None
    return subject <= limit if parts[0] == "≤" else subject >= limit


@dataclass
class Result:
    bench: str
    figures: list[Figure]
    series: dict[str, list[float]] = field(default_factory=dict)   # raw samples / curves for plots
    notes: str = ""
    measured_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))


def write_result(bench: str, figures: list[Figure], series: dict[str, list[float]] | None = None,
                 notes: str = "") -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    result = Result(bench, figures, series or {}, notes)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w") as out:
        json.dump(asdict(result), out, indent=1)
    os.replace(path + ".tmp", path)


@dataclass
class Samples:
    """Latencies of one kind (seconds), with nearest-rank percentiles."""
    label: str
    seconds: list[float]
    width: int = 36                  # of the label column in line()

    def percentile(self, q: float) -> float:
        ordered = sorted(self.seconds)
        rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
        return ordered[rank]

    def line(self) -> str:
        return (f"{self.label:<{self.width}} n={len(self.seconds):<3} p50={self.percentile(50) * 1000:7.1f} ms"
                f"  p99={self.percentile(99) * 1000:7.1f} ms")
