"""`make bench`: run every benchmark in bench/, collect their results, rewrite docs/benchmarks.md.

Each benchmark runs as `python bench/<name>.py` with SHIPMATE_BENCH_JSON=bench/results/<name>.json (see
bench/result.py); its output goes to bench/results/<name>.log. A benchmark that wrote no JSON still
counts when it exits 0: its last line carries its ratio, which is taken as its figure.

A run never leaves an earlier figure standing: a benchmark that exits non-zero after writing its figures
is reported with them and its exit status (a miss is a **no**, not a failure to hide); one that exits
non-zero (or times out) without figures replaces its previous result with a failure record
(bench/results/<name>.json with "failed"), shown as **failed** in the summary; a benchmark with no result
at all is shown as **not run**. Figures from an earlier `make bench` than this one (with --only/--skip)
say so in the "measured" column.

docs/benchmarks.md is generated: this script owns the blocks between `<!-- bench-report:NAME begin -->`
and `<!-- bench-report:NAME end -->` markers, the summary table with the plots and one section per
benchmark (its method from the benchmark's docstring, its figures, its notes), so no hand-written
figure can contradict the summary. Plots are PNGs in docs/img/ (matplotlib).

    /opt/shipmate/venv/bin/python bench/report.py              # run everything, then write the report
    /opt/shipmate/venv/bin/python bench/report.py --no-run     # only rewrite the report from bench/results/
    /opt/shipmate/venv/bin/python bench/report.py --only density,footprint --args footprint=--seconds=10
"""
from __future__ import annotations

import argparse
import ast
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
# The target of the ratio a benchmark prints last, for a run that left no JSON result.
TARGETS = {"pod_startup": "≤ 1.5", "cni_exec": "", "proxy_sync": "≤ 1.0", "exit_to_status": "≤ 3",
           "cross_node": "≤ 1.2", "scheduler": "≥ 0.7", "datastore": "≥ 0.15", "density": "≤ 1.5"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


@dataclass
class BenchResult:
    bench: str
    figures: list[Figure]
    series: dict[str, list[float]] = field(default_factory=dict)
    notes: str = ""
    measured_at: str = ""
    status: str = "ok"                # ok | exited N | failed | not run
    failure: str = ""                 # why it failed (status failed), or ""
    earlier: bool = False             # from an earlier `make bench` than this one


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
    """The bench's JSON (result.py's shape, or a failure record), else a one-figure result from the last
    line of its log; None when there is neither (never run)."""
    json_path, log_path = RESULTS_DIR / f"{bench}.json", RESULTS_DIR / f"{bench}.log"
    if json_path.exists():
        try:
            data = json.loads(json_path.read_text())
        except ValueError as exc:
            return BenchResult(bench, [], status="failed", failure=f"unreadable result file: {exc}")
        if isinstance(data, dict) and data.get("failed"):
            return BenchResult(bench, [], notes=data.get("notes", ""), measured_at=data.get("measured_at", ""),
                               status="failed", failure=str(data["failed"]))
        if isinstance(data, dict) and "figures" in data:
            figures = [Figure(**f) for f in data["figures"]]
            exit_status = data.get("exit_status", 0)
            return BenchResult(bench, figures, data.get("series", {}), data.get("notes", ""),
                               data.get("measured_at", ""),
                               status="ok" if not exit_status else f"exited {exit_status}")
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


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def record_run(bench: str, returncode: int | None, output: str, fresh_json: Path) -> str:
    """Store what one run left: its figures (with a non-zero exit status noted) or a failure record.
    Nothing of an earlier run survives. Returns the status: ok | exited N | failed."""
    json_path, log_path = RESULTS_DIR / f"{bench}.json", RESULTS_DIR / f"{bench}.log"
    failed_log = RESULTS_DIR / f"{bench}.failed.log"
    log_path.unlink(missing_ok=True)
    json_path.unlink(missing_ok=True)
    failed_log.unlink(missing_ok=True)
    data = None
    if fresh_json.exists():
        try:
            data = json.loads(fresh_json.read_text())
        except ValueError:
            data = None
        fresh_json.unlink()
    if returncode == 0:
        log_path.write_text(output)
        if data is not None:
            json_path.write_text(json.dumps(data, indent=1))
        return "ok"
    failed_log.write_text(output)
    if data is not None and data.get("figures"):
        data["exit_status"] = returncode if returncode is not None else "timeout"
        json_path.write_text(json.dumps(data, indent=1))
        return f"exited {data['exit_status']}"
    tail = [line.strip() for line in output.strip().splitlines() if line.strip()][-1:] or ["no output"]
    why = "timed out" if returncode is None else f"exit status {returncode}"
    json_path.write_text(json.dumps({"bench": bench, "failed": f"{why}: {tail[0][:200]}", "figures": [],
                                     "measured_at": _now(),
                                     "notes": f"output in bench/results/{bench}.failed.log"}, indent=1))
    return "failed"


def run_bench(bench: str, extra: list[str], timeout: float) -> str:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    fresh_json = RESULTS_DIR / f"{bench}.json.new"
    env = {**os.environ, ENV: str(fresh_json)}
    print(f"== {bench} {' '.join(extra)}", flush=True)
    started = time.monotonic()
    fresh_json.unlink(missing_ok=True)
    try:
        done = subprocess.run([sys.executable, str(BENCH_DIR / f"{bench}.py"), *extra], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=timeout)
        output, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        def text(value) -> str:
            return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")
        output, returncode = f"{text(exc.stdout)}{text(exc.stderr)}\ntimed out after {timeout:.0f} s", None
    print("\n".join(output.rstrip().splitlines()[-3:]), f"({time.monotonic() - started:.0f} s)", flush=True)
    return record_run(bench, returncode, output, fresh_json)


# --- rendering ------------------------------------------------------------------------------------
def fmt(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.2f}" if abs(value) < 100 else f"{value:.0f}"
    return f"{text} {unit}".strip() if unit and unit != "ratio" else text


def summary_table(results: list[BenchResult], missing: list[str] = ()) -> str:
    rows = ["| benchmark | figure | ours | baseline | ratio | target | met? | measured |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for result in results:
        notes = [result.status] if result.status not in ("ok", "failed") else []
        if result.earlier:
            notes.append("earlier run")
        when = result.measured_at + (f" ({', '.join(notes)})" if notes else "")
        if result.status == "failed" or not result.figures:
            why = (result.failure or "no figures").replace("|", "\\|")
            rows.append(f"| `{result.bench}` | {why} | — | — | — | — | **failed** | {when} |")
            continue
        for f in result.figures:
            baseline = fmt(f.baseline, f.unit) if f.baseline is not None else f.baseline_label
            met = {True: "yes", False: "**no**", None: "—"}[f.met]
            rows.append(f"| `{result.bench}` | {f.name} | {fmt(f.value, f.unit)} | {baseline} | {fmt(f.ratio)} | "
                        f"{f.target or '—'} | {met} | {when} |")
    for bench in missing:
        rows.append(f"| `{bench}` | no result | — | — | — | — | **not run** | — |")
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
        ax.axhline(100, color="gray", linestyle="--", label="target 100 MiB (110 pods)")
        ax.set_xlabel("pods on the node")
        ax.set_ylabel("MiB")
        ax2 = ax.twinx()
        ax2.plot(pods, footprint.series["agent CPU (% of a core)"], "s-", color="tab:red", label="agent CPU (%)")
        ax2.axhline(1, color="tab:red", linestyle=":", label="target 1 % (children included)")
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


INTRO = """# Benchmarks

Generated by `make bench` (`bench/report.py`) from fresh runs; do not edit by hand: a re-run rewrites the
whole page. Each benchmark in `bench/` measures its floor in the same run and prints its ratio as its last
line; every figure below comes from the latest run of its benchmark (`bench/results/`). A benchmark that
failed is shown as failed, a missed target as **no**: an earlier figure never stands in for a run that did not
pass. The machine is a 2-core Debian 12 box shared with other work while measured, so read ratios (ours and
the floor measured in the same run) rather than absolute times; where a benchmark repeats rounds, its notes
give the spread.
"""


def bench_method(bench: str) -> str:
    """The method part of a benchmark's docstring: its text up to the usage lines (indented commands)."""
    path = BENCH_DIR / f"{bench}.py"
    try:
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    except (OSError, SyntaxError):
        return ""
    kept = []
    for line in doc.splitlines():
        if line.startswith("    ") and ("python" in line or "bench/" in line):
            break
        kept.append(line)
    return "\n".join(kept).strip()


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    def pick(q: float) -> float:
        return ordered[max(0, min(len(ordered) - 1, int(round(q * len(ordered) + 0.5)) - 1))]
    return (f"n={len(ordered)}, min {fmt(ordered[0])}, p50 {fmt(pick(0.5))}, p99 {fmt(pick(0.99))}, "
            f"max {fmt(ordered[-1])}")


def bench_section(result: BenchResult) -> str:
    """One benchmark's section: method (docstring), run, figures table, notes, sample spreads."""
    lines = [f"## `{result.bench}` (`bench/{result.bench}.py`)"]
    method = bench_method(result.bench)
    if method:
        lines += ["", "```text", method, "```"]
    when = result.measured_at or "unknown time"
    if result.status == "failed" or not result.figures:
        lines += ["", f"Run {when}: **failed** ({result.failure or 'no figures'}); no figure from it is shown."]
    else:
        status = "" if result.status == "ok" else f" ({result.status})"
        earlier = " (from an earlier `make bench`)" if result.earlier else ""
        lines += ["", f"Run {when}{status}{earlier}."]
        rows = ["| figure | ours | baseline | ratio | target | met? |", "| --- | --- | --- | --- | --- | --- |"]
        for f in result.figures:
            baseline = fmt(f.baseline, f.unit) if f.baseline is not None else f.baseline_label
            met = {True: "yes", False: "**no**", None: "—"}[f.met]
            rows.append(f"| {f.name} | {fmt(f.value, f.unit)} | {baseline} | {fmt(f.ratio)} | {f.target or '—'} | "
                        f"{met} |")
        lines += ["", *rows]
    if result.notes:
        lines += ["", result.notes.strip()]
    samples = [(name, values) for name, values in result.series.items()
               if values and len(values) >= 3 and ("(ms)" in name or "(s)" in name or "(µs)" in name)]
    if samples:
        lines += ["", "Samples: " + "; ".join(f"{name}: {_spread(values)}" for name, values in samples) + "."]
    return "\n".join(lines)


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


VAGRANT_RESULTS = RESULTS_DIR / "vagrant.json"  # written by hack/vagrant.sh (make e2e-vagrant, make test's smoke)
VAGRANT_STEPS = [("box_ready", "box ready (`make vagrant-box`; cached: a check only)"),
                 ("vms_up", "`vagrant up` (boot to SSH)"), ("shipmate_installed", "shipmate's venv (built on the host) unpacked"),
                 ("agent_installed", "`shipmate install agent` (smoke: join of the host's server)"),
                 ("node_ready_pod_running", "smoke: Node Ready, unit active, a pod Running and its log"),
                 ("cluster_ready_after_boot", "server + agents installed, every node Ready"),
                 ("tests", "tests/e2e/multinode + tests/vagrant/test_vm_checks.py"), ("destroy", "destroy"),
                 ("total", "total (smoke: the test's own; under `make test` the boot overlaps the clients' suites)")]


def vagrant_section() -> str:
    """Wall times of the Vagrant runs (not a benchmark against a floor: the figures of the last run)."""
    if not VAGRANT_RESULTS.exists():
        return ""
    data = json.loads(VAGRANT_RESULTS.read_text())
    lines = ["## Vagrant (real VMs)",
             "Wall times of the latest `make e2e-vagrant` (one server + two agent VMs) and of `make test`'s one-VM "
             "smoke (`tests/vagrant`), from `bench/results/vagrant.json` (hack/vagrant.sh writes it). The VMs run "
             "the box `make vagrant-box` builds; on this machine under QEMU's software emulation (TCG: no usable "
             "hardware virtualization), about 30 times slower than the host.", "",
             "| step | " + " | ".join(name for name in ("smoke", "e2e") if name in data) + " |",
             "| --- | " + " | ".join("---:" for name in ("smoke", "e2e") if name in data) + " |"]
    for key, label in VAGRANT_STEPS:
        cells = [f"{data[name][key]} s" if key in data[name] else "–" for name in ("smoke", "e2e") if name in data]
        if any(cell != "–" for cell in cells):
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "box_build_seconds" in data:
        debootstrap = data.get("debootstrap_seconds")
        how = ("" if debootstrap is None else " (from the cached debootstrap tree)" if debootstrap == 0
               else f" (debootstrap from the Debian mirror included: {debootstrap} s)")
        lines += ["", f"Latest box build (`make vagrant-box`): {data['box_build_seconds']} s{how}."]
    for name in ("smoke", "e2e"):
        if name in data:
            entry = data[name]
            status = entry.get("tests_status")
            lines.append("")
            lines.append(f"{name}: measured {entry.get('measured', '?')}, {entry.get('cores', '?')} host cores, "
                         f"driver {entry.get('driver', '?')}"
                         + (f", tests exit status {status}" if status is not None else "") + ".")
            if entry.get("notes"):
                lines.append(entry["notes"])
    return "\n".join(lines)


def render_page(results: list[BenchResult], missing: list[str] = (), plots: list[str] = ()) -> str:
    """The whole of docs/benchmarks.md: introduction, summary (with plots), one section per benchmark."""
    summary = ("## Summary\n"
               "Every figure against its baseline, from the latest run of each benchmark (`bench/results/`); "
               "`bench/report.py --no-run` rewrites this page from those files.\n\n"
               + summary_table(results, missing)
               + ("\n\n" + "\n\n".join(plots) if plots else ""))
    text = INTRO + "\n" + replace_block("", "summary", summary).lstrip()
    for result in sorted(results, key=lambda r: r.bench):
        text = replace_block(text, result.bench, bench_section(result))
    if vagrant_section():
        text = replace_block(text, "vagrant", vagrant_section())
    return text


def write_report(results: list[BenchResult], missing: list[str] = ()) -> None:
    IMG_DIR.mkdir(parents=True, exist_ok=True)
    by_name = {r.bench: r for r in results if r.figures}
    plots = []
    if plot_latency(by_name, IMG_DIR / "bench-latency.png"):
        plots.append("![Latency distributions](img/bench-latency.png)")
    if plot_scale(by_name, IMG_DIR / "bench-scale.png"):
        plots.append("![Cost against scale](img/bench-scale.png)")
    DOC.write_text(render_page(results, missing, plots))


def collect(names: list[str], ran: dict[str, str] | None) -> tuple[list[BenchResult], list[str]]:
    """Every benchmark's latest result; `ran`: the statuses of this run's benchmarks (None: --no-run),
    the others are marked as from an earlier run. Returns (results, benchmarks without any)."""
    results, missing = [], []
    for bench in names:
        result = load_result(bench)
        if result is None:
            print(f"no result for {bench}", file=sys.stderr)
            missing.append(bench)
            continue
        result.earlier = ran is not None and bench not in ran
        results.append(result)
    return results, missing


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
            status[bench] = run_bench(bench, extra.get(bench, []), args.timeout)
    results, missing = collect(names, status if args.run else None)
    write_report(results, missing)
    failed = [b for b, s in status.items() if s != "ok"]
    print(f"wrote {DOC.relative_to(REPO)} ({len(results)} benchmarks, failed: {', '.join(failed) or 'none'})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
