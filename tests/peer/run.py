"""Runs clients' own test suites against the `make up` cluster (issue 19) and holds them to
tests/peer/EXPECTED_FAILURES.md: the run fails when a test outside that list fails, or a listed one passes (so
the list shrinks as features land). Writes docs/compatibility.md with the counts and every listed failure's reason.

    python -m tests.peer.run [--suite kr8s|python-client] [--no-report] [-- PYTEST_ARGS...]

Suites:
- python-client: the official Python client's e2e tests (sync and asyncio), upstream files run from
  ../shared/peer/kubernetes-client-python (SHIPMATE_PEER_DIR overrides), against the admin kubeconfig;
- kr8s: the tests shipped inside the kr8s wheel (`kr8s.tests`), with our fixtures (tests/peer/kr8s_cluster.py)
  in place of kr8s's repository conftest, which would create a kind cluster.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

from tests.support import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTED = REPO_ROOT / "tests" / "peer" / "EXPECTED_FAILURES.md"
REPORT = REPO_ROOT / "docs" / "compatibility.md"
PEER_DIR = Path(os.environ.get("SHIPMATE_PEER_DIR", REPO_ROOT.parent / "shared" / "peer"))
KUBECONFIG = os.environ.get("SHIPMATE_PEER_KUBECONFIG", "/etc/shipmate/admin.kubeconfig")
SUITE_TIMEOUT = float(os.environ.get("SHIPMATE_PEER_TIMEOUT", "600"))
# A test that waits on something this cluster never sends (a watch with no timeout, say) fails after this instead
# of holding the whole run (pytest-timeout).
TEST_TIMEOUT = os.environ.get("SHIPMATE_PEER_TEST_TIMEOUT", "120")
# Only two reasons may keep a test on the list: an open issue owns the feature, or the test is wrong against
# real Kubernetes too.
REASON = re.compile(r"^(issue \d+: |wrong upstream too: ).+")


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    title: str
    args: list[str]
    cwd: Path


def kr8s_tests() -> Path:
    import importlib.util
    spec = importlib.util.find_spec("kr8s")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("kr8s is not installed (it is a test dependency: make test installs it)")
    return Path(list(spec.submodule_search_locations)[0]) / "tests"


def suites() -> dict[str, Suite]:
    client, kr8s = PEER_DIR / "kubernetes-client-python", kr8s_tests()
    return {
        "python-client": Suite("python-client", "official Python client (`kubernetes`), its e2e_test and aio/e2e_test",
                               [str(client / "kubernetes" / "e2e_test"), str(client / "kubernetes" / "aio" / "e2e_test"),
                                "--import-mode=importlib",
                                "--rootdir", str(client), "-p", "tests.peer.client_paths"],
                               client),
        # kr8s/tests has no __init__.py: collected by path; the wheel's kr8s/conftest.py (one level up) is loaded
        "kr8s": Suite("kr8s", "kr8s, the tests shipped in its wheel (`kr8s/tests`)",
                      [str(kr8s), "--rootdir", str(kr8s.parent), "-p", "tests.peer.kr8s_cluster",
                       "-o", "asyncio_mode=auto",
                       "-o", "asyncio_default_fixture_loop_scope=function"], REPO_ROOT),
    }


@dataclasses.dataclass
class Outcome:
    passed: list[str] = dataclasses.field(default_factory=list)
    failed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    retried: list[str] = dataclasses.field(default_factory=list)   # failed, then passed on the second run
    seconds: float = 0.0
    note: str = ""

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed)


def test_id(case: ElementTree.Element) -> str:
    """`module.path::Class::name` from a JUnit testcase (pytest writes classname as dotted module[.Class])."""
    return f"{case.get('classname', '')}::{case.get('name', '')}"


def parse_junit(path: Path) -> Outcome:
    outcome = Outcome()
    for case in ElementTree.parse(path).iter("testcase"):
        kinds = {child.tag for child in case}
        if kinds & {"failure", "error"}:
            outcome.failed.append(test_id(case))
        elif "skipped" in kinds:
            outcome.skipped.append(test_id(case))
        else:
            outcome.passed.append(test_id(case))
    return outcome


def run_suite(suite: Suite, extra: list[str], expected: dict[tuple[str, str], str] | None = None) -> Outcome:
    """One run of the suite; tests that fail outside the list run once more (`--lf`): these suites were written
    against other clusters and machines, and a test that passes on its second run is reported as such."""
    if not suite.cwd.is_dir():
        return Outcome(note=f"{suite.cwd} is missing (SHIPMATE_PEER_DIR names the peer directory)")
    with tempfile.TemporaryDirectory(prefix="shipmate-peer-") as directory:
        env = {**os.environ, "KUBECONFIG": KUBECONFIG, "SHIPMATE_PEER_KUBECONFIG": KUBECONFIG,
               "SHIPMATE_PEER_CLIENT_DIR": str(PEER_DIR / "kubernetes-client-python"),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}

        def pytest(junit: Path, *more: str) -> Outcome:
            # --tb=native: pytest's own traceback formatting parses source and can crash (INTERNALERROR) on deep
            # stacks; the cache (for --lf) lives in the temporary directory, the suites' own trees stay untouched
            command = [sys.executable, "-m", "pytest", "-q", "--tb=native", f"--junitxml={junit}",
                       "-o", "junit_family=xunit1", "-o", f"cache_dir={directory}/cache",
                       f"--timeout={TEST_TIMEOUT}", *suite.args, *extra, *more]  # pytest-timeout loads itself
            print(f"==> {suite.name}: {' '.join(command)}", flush=True)
            try:
                subprocess.run(command, cwd=suite.cwd, env=env, timeout=SUITE_TIMEOUT)
            except subprocess.TimeoutExpired:
                return Outcome(note=f"stopped after {SUITE_TIMEOUT:.0f} s")
            return parse_junit(junit) if junit.exists() else Outcome(note="pytest wrote no report")

        started = time.monotonic()
        outcome = pytest(Path(directory) / "junit.xml")
        unlisted = [test for test in outcome.failed if (suite.name, test) not in (expected or {})]
        if unlisted and not outcome.note:
            again = pytest(Path(directory) / "again.xml", "--last-failed", "--last-failed-no-failures", "none")
            for test in unlisted:
                if test in again.passed:
                    outcome.failed.remove(test)
                    outcome.passed.append(test)
                    outcome.retried.append(test)
        outcome.seconds = time.monotonic() - started
        return outcome


def read_expected(text: str) -> tuple[dict[tuple[str, str], str], list[str]]:
    """The table rows `| suite | test | reason |` → {(suite, test): reason}, and the rows whose reason is not one
    of the two acceptable ones."""
    expected: dict[tuple[str, str], str] = {}
    refused: list[str] = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or cells[0] in ("suite", "---", "") or set(cells[0]) <= {"-"}:
            continue
        suite, test, reason = cells[0], cells[1].strip("`"), cells[2]
        if not REASON.match(reason):
            refused.append(f"{suite} {test}: {reason!r}")
        expected[(suite, test)] = reason
    return expected, refused


@dataclasses.dataclass
class Verdict:
    unexpected: list[str]        # failed, not on the list
    fixed: list[str]             # on the list, passed
    missing: list[str]           # on the list, not run at all


def timing_dependent(reason: str) -> bool:
    """`issue N: timing: …` or `wrong upstream too: timing: …`: a listed test that fails or passes by timing alone;
    its passing is reported and does not fail the run."""
    return reason.split(": ", 2)[1:2] == ["timing"]


def judge(suite: str, outcome: Outcome, expected: dict[tuple[str, str], str]) -> Verdict:
    listed = {test for (name, test) in expected if name == suite}
    steady = {test for test in listed if not timing_dependent(expected[(suite, test)])}
    ran = set(outcome.passed) | set(outcome.failed) | set(outcome.skipped)
    return Verdict(unexpected=sorted(set(outcome.failed) - listed), fixed=sorted(steady & set(outcome.passed)),
                   missing=sorted(listed - ran))


def render_report(results: dict[str, tuple[Suite, Outcome]], expected: dict[tuple[str, str], str]) -> str:
    lines = ["# Compatibility: clients' own test suites against shipmate", "",
             "Generated by `python -m tests.peer.run` (part of `make test`) against the `make up` cluster; do not edit "
             "by hand. A test that fails here is either listed in tests/peer/EXPECTED_FAILURES.md with its reason "
             "(an open issue owns the feature, or the test is wrong against real Kubernetes too) or fails the run.",
             "", "| suite | passed | failed | skipped | pass rate | time |", "| --- | --- | --- | --- | --- | --- |"]
    for suite, outcome in results.values():
        rate = f"{100 * len(outcome.passed) / outcome.total:.1f} %" if outcome.total else "—"
        note = f" ({outcome.note})" if outcome.note else ""
        lines.append(f"| {suite.title} | {len(outcome.passed)} | {len(outcome.failed)} | {len(outcome.skipped)} | "
                     f"{rate}{note} | {outcome.seconds:.0f} s |")
    lines += ["", "Pass rate: passed / (passed + failed); skipped tests are those their authors skip "
              "(for example, features a cluster may lack), counted apart. A test outside the list that fails is run "
              "once more; those that then passed:", ""]
    retried = [f"- {suite.name}: `{test}`" for suite, outcome in results.values() for test in outcome.retried]
    lines += retried or ["None."]
    lines += ["", "## Failures left, with their reasons", ""]
    rows = [(name, test, reason) for (name, test), reason in sorted(expected.items())
            if name in results and test in results[name][1].failed]
    if rows:
        lines += ["| suite | test | reason |", "| --- | --- | --- |"]
        lines += [f"| {name} | `{test}` | {reason} |" for name, test, reason in rows]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def wait_for_node_metrics(timeout: float = 120) -> None:
    """Like a cluster whose metrics-server has scraped once: the suites read node metrics (the client's
    test_metrics_utilities_integration), which need two samples of each node after an agent (re)start."""
    def scraped() -> bool:
        result = subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "get", "--raw",
                                 "/apis/metrics.k8s.io/v1beta1/nodes"], capture_output=True, text=True)
        return result.returncode == 0 and '"usage"' in result.stdout
    try:
        wait_for(scraped, timeout, "node metrics", interval=2)
    except AssertionError:
        print(f"==> no node metrics after {timeout:.0f} s; running the suites anyway", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=sorted(suites()), action="append",
                        help="run only this suite (again for more); default: all")
    parser.add_argument("--no-report", action="store_true", help="do not rewrite docs/compatibility.md")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (after --)")
    args = parser.parse_args(argv)
    expected, refused = read_expected(EXPECTED.read_text())
    results: dict[str, tuple[Suite, Outcome]] = {}
    status = 0
    wait_for_node_metrics()
    every = suites()
    for name in args.suite or sorted(every):
        suite = every[name]
        outcome = run_suite(suite, args.pytest_args, expected)
        results[name] = (suite, outcome)
        verdict = judge(name, outcome, expected)
        print(f"==> {name}: {len(outcome.passed)} passed, {len(outcome.failed)} failed "
              f"({len(outcome.failed) - len(verdict.unexpected)} listed), {len(outcome.skipped)} skipped in "
              f"{outcome.seconds:.0f} s {outcome.note}", flush=True)
        for test in outcome.retried:
            print(f"    failed, then passed when run again: {test}")
        for test in verdict.unexpected:
            print(f"    failed and not in {EXPECTED.name}: {test}")
        for test in sorted(set(outcome.passed) & {t for (n, t), r in expected.items() if n == name and timing_dependent(r)}):
            print(f"    listed as timing-dependent, passed this time: {test}")
        for test in verdict.fixed:
            print(f"    listed in {EXPECTED.name} but passed (take it off the list): {test}")
        for test in verdict.missing:
            print(f"    listed in {EXPECTED.name} but did not run: {test}")
        if verdict.unexpected or verdict.fixed or verdict.missing or outcome.note or not outcome.total:
            status = 1
    for row in refused:
        print(f"    not an acceptable reason (issue N: … or wrong upstream too: …): {row}")
        status = 1
    if not args.no_report and not args.pytest_args:
        REPORT.write_text(render_report(results, expected))
        print(f"==> wrote {REPORT.relative_to(REPO_ROOT)}")
    return status


if __name__ == "__main__":
    sys.exit(main())
