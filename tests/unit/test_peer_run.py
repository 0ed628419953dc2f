"""The peer-suite runner's bookkeeping (tests/peer/run.py): the expected-failure list and its verdicts."""
from pathlib import Path

from tests.peer.run import Outcome, judge, parse_junit, read_expected, render_report, suites

LIST = """
| suite | test | reason |
| --- | --- | --- |
| kr8s | `kr8s.tests.test_api::test_a` | issue 20: needs the nftables proxy |
| kr8s | kr8s.tests.test_api::test_b | wrong upstream too: asks for a kind cluster |
| python-client | kubernetes.e2e_test.test_client.TestClient::test_c | flaky |
"""


def test_the_list_keeps_only_the_two_acceptable_reasons() -> None:
    expected, refused = read_expected(LIST)
    assert set(expected) == {("kr8s", "kr8s.tests.test_api::test_a"), ("kr8s", "kr8s.tests.test_api::test_b"),
                             ("python-client", "kubernetes.e2e_test.test_client.TestClient::test_c")}
    assert refused == ["python-client kubernetes.e2e_test.test_client.TestClient::test_c: 'flaky'"]


def test_unexpected_failures_listed_passes_and_listed_tests_that_did_not_run_are_reported() -> None:
    expected, _ = read_expected(LIST)
    outcome = Outcome(passed=["kr8s.tests.test_api::test_b"], failed=["kr8s.tests.test_api::test_new"])
    verdict = judge("kr8s", outcome, expected)
    assert verdict.unexpected == ["kr8s.tests.test_api::test_new"]
    assert verdict.fixed == ["kr8s.tests.test_api::test_b"]
    assert verdict.missing == ["kr8s.tests.test_api::test_a"]
    clean = judge("kr8s", Outcome(passed=[],
                                  failed=["kr8s.tests.test_api::test_a", "kr8s.tests.test_api::test_b"]), expected)
    assert (clean.unexpected, clean.fixed, clean.missing) == ([], [], [])


def test_junit_outcomes_and_the_report(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    junit.write_text("""<testsuites><testsuite>
      <testcase classname="kr8s.tests.test_api" name="test_a"><failure message="x"/></testcase>
      <testcase classname="kr8s.tests.test_api" name="test_ok"/>
      <testcase classname="kr8s.tests.test_api" name="test_err"><error message="y"/></testcase>
      <testcase classname="kr8s.tests.test_api" name="test_skip"><skipped message="z"/></testcase>
    </testsuite></testsuites>""")
    outcome = parse_junit(junit)
    assert outcome.passed == ["kr8s.tests.test_api::test_ok"]
    assert outcome.failed == ["kr8s.tests.test_api::test_a", "kr8s.tests.test_api::test_err"]
    assert outcome.skipped == ["kr8s.tests.test_api::test_skip"]
    expected, _ = read_expected(LIST)
    report = render_report({"kr8s": (suites()["kr8s"], outcome)}, expected)
    assert "| 1 | 2 | 1 | 33.3 % |" in report
    assert "| kr8s | `kr8s.tests.test_api::test_a` | issue 20: needs the nftables proxy |" in report


def test_a_timing_dependent_listed_test_may_pass_without_failing_the_run() -> None:
    expected, refused = read_expected("| kr8s | t::x | issue 19: timing: passes when the answer is early |\n")
    assert refused == []
    verdict = judge("kr8s", Outcome(passed=["t::x"]), expected)
    assert (verdict.unexpected, verdict.fixed, verdict.missing) == ([], [], [])
