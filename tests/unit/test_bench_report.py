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
