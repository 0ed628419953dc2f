"""`make bench`: run every benchmark in bench/, collect their results, rewrite docs/benchmarks.md.

Each benchmark runs as `python bench/<name>.py` with SHIPMATE_BENCH_JSON=bench/results/<name>.json (see
bench/result.py); its output goes to bench/results/<name>.log. A benchmark that wrote no JSON still
counts: its last line carries its ratio, which is taken as its figure. A benchmark that fails keeps its
previous result (said in the report).

docs/benchmarks.md keeps everything written by hand; this script owns only the blocks between
`<!-- bench-report:NAME begin -->` and `<!-- bench-report:NAME end -->` markers: the summary table with
the plots (placed after the page's introduction the first time) and one section per benchmark that has
none written by hand (density, footprint). Plots are PNGs in docs/img/ (matplotlib).

    /opt/shipmate/venv/bin/python bench/report.py              # run everything, then write the report
    /opt/shipmate/venv/bin/python bench/report.py --no-run     # only rewrite the report from bench/results/
    /opt/shipmate/venv/bin/python bench/report.py --only density,footprint --args footprint=--seconds=10
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from result import ENV, Figure, target_met

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
RESULTS_DIR = BENCH_DIR / "results"
DOC = REPO / "docs" / "benchmarks.md"
IMG_DIR = REPO / "docs" / "img"
NOT_BENCHMARKS = {"report.py", "result.py"}
# Hand-written target of benchmarks whose JSON carries none (their docstrings say it).
TARGETS = {"pod_startup": "≤ 1.5", "cni_exec": "", "proxy_sync": "≤ 1.3", "exit_to_status": "≤ 3",
           "cross_node": "≤ 1.2", "scheduler": "≥ 0.7", "datastore": "≥ 0.5", "density": "≤ 1.5"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@dataclass
class BenchResult:
    bench: str
    figures: list[Figure]
    series: dict[str, list[float]] = field(default_factory=dict)
    notes: str = ""
    measured_at: str = ""
    status: str = "ok"                # ok | failed (previous result kept) | not run


def benchmarks() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.name not in NOT_BENCHMARKS)


def last_line_ratio(text: str) -> tuple[str, float] | None:
    """The last non-empty line and its last number: every benchmark prints its ratio last."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    numbers = _NUMBER.findall(lines[-1])
    return (lines[-1], float(numbers[-1])) if numbers else None


def load_result(bench: str) -> BenchResult | None:
    """The bench's JSON (result.py's shape), else a one-figure result from the last line of its log."""
    json_path, log_path = RESULTS_DIR / f"{bench}.json", RESULTS_DIR / f"{bench}.log"
    if json_path.exists():
        data = json.loads(json_path.read_text())
        if isinstance(data, dict) and "figures" in data:
            figures = [Figure(**f) for f in data["figures"]]
            return BenchResult(bench, figures, data.get("series", {}), data.get("notes", ""),
                               data.get("measured_at", ""))
    if log_path.exists():
        found = last_line_ratio(log_path.read_text(errors="replace"))
        if found:
            line, ratio = found
            target = TARGETS.get(bench, "")
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(log_path.stat().st_mtime))
            figure = Figure(line.rsplit(":", 1)[0][:80], ratio, None, "ratio", target, ratio=ratio,
                            met=target_met(target, ratio, ratio) if target else None, baseline_label="see section")
            return BenchResult(bench, [figure], measured_at=stamp)
    return None


def run_bench(bench: str, extra: list[str], timeout: float) -> bool:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    json_path, log_path = RESULTS_DIR / f"{bench}.json", RESULTS_DIR / f"{bench}.log"
    fresh_json = RESULTS_DIR / f"{bench}.json.new"
    env = {**os.environ, ENV: str(fresh_json)}
    print(f"== {bench} {' '.join(extra)}", flush=True)
    started = time.monotonic()
    try:
        done = subprocess.run([sys.executable, str(BENCH_DIR / f"{bench}.py"), *extra], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)
        output, ok = done.stdout + done.stderr, done.returncode == 0
    except subprocess.TimeoutExpired as exc:
        output, ok = f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {timeout:.0f} s", False
    print("\n".join(output.rstrip().splitlines()[-3:]), f"({time.monotonic() - started:.0f} s)", flush=True)
    if not ok:
        (RESULTS_DIR / f"{bench}.failed.log").write_text(output)
        fresh_json.unlink(missing_ok=True)
        return False
    log_path.write_text(output)
    (RESULTS_DIR / f"{bench}.failed.log").unlink(missing_ok=True)
    if fresh_json.exists():
        fresh_json.replace(json_path)
    else:
        json_path.unlink(missing_ok=True)   # the log's last line is the result now
    return True


# --- rendering ------------------------------------------------------------------------------------
def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}".strip() if unit and unit != "ratio" else text


def summary_table(results: list[BenchResult]) -> str:
    rows = ["| benchmark | figure | ours | baseline | ratio | target | met? | measured |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        when = result.measured_at + ("" if result.status == "ok" else f" ({result.status})")
        for f in result.figures:
            baseline = fmt(f.baseline, f.unit) if f.baseline is not None else f.baseline_label
            met = {True: "yes", False: "**no**", None: "—"}[f.met]
            rows.append(f"| `{result.bench}` | {f.name} | {fmt(f.value, f.unit)} | {baseline} | {fmt(f.ratio)} | "
                        f"{f.target or '—'} | {met} | {when} |")
    return "\n".join(rows)


def plot_latency(results: dict[str, BenchResult], path: Path) -> bool:
    """CDFs of every latency sample series (pod start, density fill, exit → status)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = [(f"{bench}: {name}", values) for bench in ("pod_startup", "density", "exit_to_status")
              if bench in results for name, values in results[bench].series.items()
              if values and ("(ms)" in name or "(s)" in name) and "drain" not in name]
    if not curves:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in curves:
        ordered = sorted(v * 1000 if label.endswith("(s)") else v for v in values)
        ax.step([ordered[0], *ordered], [0.0, *((i + 1) / len(ordered) for i in range(len(ordered)))],
                where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of pods")
    ax.set_title("Latency distributions: pod start, density fill, exit → status (ours and floors)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_scale(results: dict[str, BenchResult], path: Path) -> bool:
    """Cost against scale: agent RSS/CPU against pods per node, proxy full sync against services."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    footprint = results.get("footprint")
    proxy = results.get("proxy_sync")
    pods = footprint.series.get("pods per node") if footprint else None
    services = proxy.series.get("services") if proxy else None
    panels = [p for p in (pods, services) if p]
    if not panels:
        return False
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    axes = list(axes[0])
    if pods:
        ax = axes.pop(0)
        ax.plot(pods, footprint.series["agent RSS median (MiB)"], "o-", label="agent RSS (MiB)")
        ax.axhline(120, color="gray", linestyle="--", label="target 120 MiB")
        ax.set_xlabel("pods on the node")
        ax.set_ylabel("MiB")
        ax2 = ax.twinx()
        ax2.plot(pods, footprint.series["agent CPU (% of a core)"], "s-", color="tab:red", label="agent CPU (%)")
        ax2.axhline(2, color="tab:red", linestyle=":", label="target 2 %")
        ax2.set_ylabel("% of one core")
        ax.set_ylim(bottom=0)
        ax2.set_ylim(bottom=0)
        ax.set_title("Agent cost against pods per node")
        lines = ax.get_legend_handles_labels()
        lines2 = ax2.get_legend_handles_labels()
        ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper left")
        ax.grid(True, alpha=0.3)
    if services:
        ax = axes.pop(0)
        for name, values in proxy.series.items():
            if name != "services" and len(values) == len(services):
                ax.plot(services, values, "o-", label=name)
        ax.set_xlabel("services (5 endpoints each)")
        ax.set_ylabel("seconds")
        ax.set_title("Proxy sync against services")
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def density_section(result: BenchResult) -> str:
    rows = ["| phase | ours | floor (raw CRI) | ratio | target |", "| --- | --- | --- | --- | --- |"]
    for f in result.figures:
        rows.append(f"| {f.name} | {fmt(f.value, f.unit)} | {fmt(f.baseline, f.unit)} | {fmt(f.ratio)} | "
                    f"{f.target or '—'} ({'met' if f.met else 'not met'}) |")
    return ("## Density (`bench/density.py`, issue 8; target fill ratio ≤ 1.5)\n"
            "Ours = `kubectl scale deployment --replicas=N` (bare pods created concurrently when the server has no "
            "Deployments) until every pod is Running on a watch; then to 0 until no sandbox, host veth or IPAM entry "
            "of those pods is left. Floor = the same sandboxes and containers (the configs our agent builds) created "
            "by a raw CRI loop all at once, then stopped and removed all at once, timed to the same check. "
            "N is capped at the node's free pod capacity (kubelet's default maxPods 110 counts other pods too).\n\n"
            f"Run {result.measured_at}: {result.notes}.\n\n" + "\n".join(rows))


def footprint_section(result: BenchResult) -> str:
    rows = ["| figure | value | target | figure / target |", "| --- | --- | --- | --- |"]
    for f in result.figures:
        rows.append(f"| {f.name} | {fmt(f.value, f.unit)} | {f.target} | {fmt(f.ratio)} |")
    return ("## Footprint (`bench/footprint.py`, issue 8)\n"
            "Agent: the running cluster's agent, psutil RSS each second and user+system CPU over the window, at "
            "idle with the node's pods as found and with the node filled to 110 pods. Server: a server of its own "
            "(temporary dir, spare port) with 10k pods created through the API. Targets are absolute limits: "
            "agent RSS ≤ 120 MiB with 110 pods (k3s agent ≈ 275 MB; kubelet e2e ceiling 300 MB at 100 pods), agent "
            "idle CPU ≤ 2 % of a core, server RSS ≤ 300 MiB with 10k pods on SQLite.\n\n"
            f"Run {result.measured_at}: {result.notes}.\n\n" + "\n".join(rows))


SECTIONS = {"density": density_section, "footprint": footprint_section}


def replace_block(text: str, name: str, body: str, after: str | None = None) -> str:
    """Put `body` between the markers of block `name`: in place when the block exists, else after the
    paragraph that ends at `after`'s first match (or at the end of the page)."""
    begin, end = f"<!-- bench-report:{name} begin -->", f"<!-- bench-report:{name} end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    if after and after in text:
        head, rest = text.split(after, 1)
        paragraph_end = rest.find("\n\n")
        cut = len(head) + len(after) + (paragraph_end if paragraph_end >= 0 else len(rest))
        return text[:cut] + "\n\n" + block + text[cut:]
    return text.rstrip() + "\n\n" + block + "\n"


def write_report(results: list[BenchResult], missing: list[str] = ()) -> None:
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    by_name = {r.bench: r for r in results}
    plots = []
    if plot_latency(by_name, IMG_DIR / "bench-latency.png"):
        plots.append("![Latency distributions](img/bench-latency.png)")
    if plot_scale(by_name, IMG_DIR / "bench-scale.png"):
        plots.append("![Cost against scale](img/bench-scale.png)")
    summary = ("## Summary (generated by `make bench`)\n"
               "Every figure against its baseline, from the latest run of each benchmark (`bench/results/`); "
               "`bench/report.py --no-run` rewrites this block from those files. Sections below add the "
               "details of each run.\n\n" + summary_table(results)
               + (f"\n\nNo result yet (their sections below hold earlier figures): "
                  f"{', '.join(f'`{m}`' for m in missing)}." if missing else "")
               + ("\n\n" + "\n\n".join(plots) if plots else ""))
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    text = replace_block(text, "summary", summary, after="read ratios rather than absolute times.")
    for bench, render in SECTIONS.items():
        if bench in by_name:
            text = replace_block(text, bench, render(by_name[bench]))
    DOC.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", dest="run", action="store_false", help="only rewrite the report")
    parser.add_argument("--only", default="", help="comma-separated benchmarks to run (default: all)")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks not to run")
    parser.add_argument("--args", action="append", default=[], metavar="BENCH=ARGS",
                        help="extra arguments for one benchmark, e.g. footprint=--seconds=10 (repeatable)")
    parser.add_argument("--timeout", type=float, default=3600.0, help="per benchmark")
    args = parser.parse_args()
    names = benchmarks()
    extra = {}
    for item in args.args:
        bench, _, rest = item.partition("=")
        extra[bench] = rest.split()
    status: dict[str, str] = {}
    if args.run:
        wanted = [n for n in (args.only.split(",") if args.only else names) if n and n not in args.skip.split(",")]
        for bench in wanted:
            status[bench] = "ok" if run_bench(bench, extra.get(bench, []), args.timeout) else \
                "failed, previous result kept"
    results, missing = [], []
    for bench in names:
        result = load_result(bench)
        if result is None:
            print(f"no result for {bench}", file=sys.stderr)
            missing.append(bench)
            continue
        result.status = status.get(bench, "ok")
        results.append(result)
    write_report(results, missing)
    failed = [b for b, s in status.items() if s != "ok"]
    print(f"wrote {DOC.relative_to(REPO)} ({len(results)} benchmarks, failed: {', '.join(failed) or 'none'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
