"""bench/report.py and bench/result.py: last-line ratios, targets, marked blocks, the summary table."""
from __future__ import annotations

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import report  # noqa: E402
from result import Figure, target_met, write_result  # noqa: E402


def test_last_line_ratio_takes_the_last_number_of_the_last_line():
    assert report.last_line_ratio("a 1.0\nfull sync ratio: 1.09\n\n") == ("full sync ratio: 1.09", 1.09)
    assert report.last_line_ratio("") is None
    assert report.last_line_ratio("no numbers here") is None


def test_targets_compare_the_ratio_or_the_value_with_a_unit():
    assert target_met("≤ 1.5", 10.0, 1.2) is True
    assert target_met("≤ 1.5", 10.0, 1.6) is False
    assert target_met("≥ 0.7", 1.0, 0.9) is True
    assert target_met("≤ 120 MiB", 130.0, None) is False
    assert target_met("clean", 1.0, 1.0) is None
    figure = Figure("rss", 90.0, None, "MiB", "≤ 120 MiB")
    assert figure.met is True and figure.ratio is None
    assert Figure("t", 3.0, 2.0, "s", "≤ 1.5").ratio == 1.5


def test_replace_block_keeps_hand_written_text_and_replaces_in_place():
    page = "# Benchmarks\n\nIntro, read ratios rather than absolute times.\nmore intro\n\n## Pod start\nhand\n"
    once = report.replace_block(page, "summary", "TABLE 1", after="read ratios rather than absolute times.")
    assert once.index("more intro") < once.index("TABLE 1") < once.index("## Pod start")
    twice = report.replace_block(once, "summary", "TABLE 2", after="read ratios rather than absolute times.")
    assert "TABLE 1" not in twice and twice.count("TABLE 2") == 1 and "## Pod start\nhand" in twice
    appended = report.replace_block(twice, "density", "## Density")
    assert appended.rstrip().endswith("<!-- bench-report:density end -->")


def test_results_round_trip_through_json_and_fall_back_to_the_log(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    monkeypatch.setenv("SHIPMATE_BENCH_JSON", str(tmp_path / "density.json"))
    write_result("density", [Figure("110 pods to Running", 30.0, 24.0, "s", "≤ 1.5")], {"ours (s)": [1.0, 2.0]})
    loaded = report.load_result("density")
    assert loaded.figures[0].ratio == 1.25 and loaded.figures[0].met is True
    assert loaded.series == {"ours (s)": [1.0, 2.0]}
    assert json.loads((tmp_path / "density.json").read_text())["bench"] == "density"
    (tmp_path / "scheduler.log").write_text("rates...\nratio (scheduler / raw binding floor): 0.62\n")
    fallback = report.load_result("scheduler")
    assert fallback.figures[0].ratio == 0.62 and fallback.figures[0].met is False   # target ≥ 0.7
    table = report.summary_table([loaded, fallback])
    assert "| `density` | 110 pods to Running | 30.00 s | 24.00 s | 1.25 | ≤ 1.5 | yes |" in table
    assert "**no**" in table


def _fresh(tmp_path, bench, figures):
    """What a benchmark writes through result.py during a run (the `.json.new` report.py hands it)."""
    path = tmp_path / f"{bench}.json.new"
    path.write_text(json.dumps({"bench": bench, "figures": figures, "series": {}, "notes": "",
                                "measured_at": "2026-12-07 07:00 UTC"}))
    return path


def test_a_failed_run_replaces_the_previous_figure_with_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    passing = {"name": "create ratio", "value": 10.0, "baseline": 5.0, "unit": "/s", "target": "≥ 0.5"}
    assert report.record_run("datastore", 0, "ok\nratio 2.0\n", _fresh(tmp_path, "datastore", [passing])) == "ok"
    assert report.load_result("datastore").figures[0].ratio == 2.0
    # The next run crashes without figures: the old 2.0 must not survive anywhere.
    status = report.record_run("datastore", 1, "Traceback ...\nRuntimeError: server exited with 1\n",
                               tmp_path / "datastore.json.new")
    assert status == "failed"
    failed = report.load_result("datastore")
    assert failed.status == "failed" and failed.figures == []
    assert "exit status 1" in failed.failure and "server exited" in failed.failure
    assert not (tmp_path / "datastore.log").exists()
    assert "RuntimeError" in (tmp_path / "datastore.failed.log").read_text()
    table = report.summary_table([failed])
    assert "**failed**" in table and "2.00" not in table
    section = report.bench_section(failed)
    assert "**failed**" in section and "2.00" not in section


def test_a_timeout_is_a_failure_and_a_miss_with_figures_is_shown_as_a_miss(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    assert report.record_run("proxy_sync", None, "partial output", tmp_path / "proxy_sync.json.new") == "failed"
    assert "timed out" in report.load_result("proxy_sync").failure
    # Exit 1 after writing figures (the scheduler exits 1 on a missed target): this run's figures, marked.
    missed = {"name": "pods/s ratio", "value": 100.0, "baseline": 200.0, "unit": "pods/s", "target": "≥ 0.7"}
    assert report.record_run("scheduler", 1, "ratio 0.5", _fresh(tmp_path, "scheduler", [missed])) == "exited 1"
    result = report.load_result("scheduler")
    assert result.status == "exited 1" and result.figures[0].met is False
    row = report.summary_table([result]).splitlines()[-1]
    assert "**no**" in row and "exited 1" in row


def test_missing_and_earlier_results_are_marked(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    figure = {"name": "p50", "value": 3.0, "baseline": 1.0, "unit": "ms", "target": "≤ 3"}
    report.record_run("pod_startup", 0, "", _fresh(tmp_path, "pod_startup", [figure]))
    results, missing = report.collect(["pod_startup", "cross_node"], {"cross_node": "failed"})
    assert missing == ["cross_node"]           # failed without even a failure record: no result
    assert results[0].earlier is True          # pod_startup was not part of this run
    table = report.summary_table(results, missing)
    assert "| `cross_node` | no result | — | — | — | — | **not run** | — |" in table
    assert "earlier run" in table
    page = report.render_page(results, missing)
    assert page.startswith("# Benchmarks") and "<!-- bench-report:pod_startup begin -->" in page
    # --no-run: nothing is "earlier"
    results, _ = report.collect(["pod_startup"], None)
    assert results[0].earlier is False


def test_unreadable_result_file_is_a_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    (tmp_path / "density.json").write_text("{not json")
    assert report.load_result("density").status == "failed"
    assert report.load_result("nothing") is None


def test_vagrant_block_says_whether_the_box_build_included_debootstrap(tmp_path, monkeypatch):
    results = tmp_path / "vagrant.json"
    monkeypatch.setattr(report, "VAGRANT_RESULTS", results)
    entry = {"measured": "2026-12-07 19:08 UTC", "cores": 2, "driver": "qemu (TCG)", "box_ready": 110, "total": 1248}
    results.write_text(json.dumps({"e2e": entry, "box_build_seconds": 106, "debootstrap_seconds": 70}))
    assert "Latest box build (`make vagrant-box`): 106 s (debootstrap from the Debian mirror included: 70 s)." \
        in report.vagrant_section()
    results.write_text(json.dumps({"e2e": entry, "box_build_seconds": 30, "debootstrap_seconds": 0}))
    assert "30 s (from the cached debootstrap tree)." in report.vagrant_section()
    results.write_text(json.dumps({"e2e": entry}))
    assert "box build" not in report.vagrant_section() and "| 110 s |" in report.vagrant_section()
