"""Workloads acceptance for batch/v1 on the real cluster: a Job with completions 5 / parallelism 2 succeeds with
exactly 5 pods, a failing Job stops at backoffLimit with BackoffLimitExceeded, Indexed pods see
JOB_COMPLETION_INDEX, `kubectl logs job/x` and cascading delete work, a `*/1 * * * *` CronJob creates a Job
within 70 s and keeps its history limit. (tests/integration/test_batch_node.py proves the same on a private
node running the branch's code.)"""
from __future__ import annotations

import json
import time
from typing import Any

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl
from tests.support import wait_for

pytestmark = pytest.mark.e2e


def job(name: str, namespace: str, script: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": namespace},
            "spec": {"template": {"spec": {
                "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": TEST_IMAGE, "command": ["sh", "-c", script]}]}}, **spec}}


def job_pods(kubectl: Kubectl, namespace: str, name: str) -> list[dict[str, Any]]:
    return kubectl.json("get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={name}")["items"]


def conditions(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in (obj.get("status") or {}).get("conditions") or []]


def finished(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    obj = kubectl.json("get", "job", name, "-n", namespace)
    return obj if any(c[0] in ("Complete", "Failed") and c[1] == "True" for c in conditions(obj)) else None


def test_five_completions_at_parallelism_two(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(job("five", namespace, "sleep 2", completions=5, parallelism=2))
    most_running = 0
    deadline = time.monotonic() + 180
    while (done := finished(kubectl, namespace, "five")) is None:
        assert time.monotonic() < deadline, "job five did not finish"
        running = [p for p in job_pods(kubectl, namespace, "five") if p["status"].get("phase") == "Running"]
        most_running = max(most_running, len(running))
        time.sleep(0.5)
    assert conditions(done) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    assert done["status"]["succeeded"] == 5
    pods = job_pods(kubectl, namespace, "five")
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"] * 5 and most_running <= 2


def test_failing_job_stops_at_backoff_limit(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(job("fails", namespace, "exit 3", backoffLimit=1))
    done = wait_for(lambda: finished(kubectl, namespace, "fails"), 120, "job fails to fail", interval=1)
    assert conditions(done)[-1] == ("Failed", "True", "BackoffLimitExceeded")
    assert done["status"]["failed"] == 2 and len(job_pods(kubectl, namespace, "fails")) == 2


def test_indexed_job_logs_and_cascading_delete(kubectl: Kubectl, namespace: str) -> None:
    kubectl.apply(job("idx", namespace, 'echo "index=$JOB_COMPLETION_INDEX"', completions=2, parallelism=2,
                      completionMode="Indexed"))
    kubectl.run("wait", "--for=condition=complete", "job/idx", "-n", namespace, "--timeout=120s", timeout=130)
    logs = {kubectl.run("logs", p["metadata"]["name"], "-n", namespace).stdout.strip()
            for p in job_pods(kubectl, namespace, "idx")}
    assert logs == {"index=0", "index=1"}
    kubectl.run("create", "job", "hello", f"--image={TEST_IMAGE}", "-n", namespace, "--", "echo", "hello")
    kubectl.run("wait", "--for=condition=complete", "job/hello", "-n", namespace, "--timeout=120s", timeout=130)
    assert kubectl.run("logs", "job/hello", "-n", namespace).stdout.strip() == "hello"
    kubectl.run("delete", "job", "hello", "idx", "-n", namespace)
    wait_for(lambda: not job_pods(kubectl, namespace, "hello") and not job_pods(kubectl, namespace, "idx"), 60,
             "the jobs' pods to be deleted", interval=1)


def test_cronjob_every_minute(kubectl: Kubectl, namespace: str) -> None:
    kubectl.run("create", "cronjob", "tick", f"--image={TEST_IMAGE}", "--schedule=*/1 * * * *", "-n", namespace,
                "--", "echo", "tick")
    kubectl.run("patch", "cronjob", "tick", "-n", namespace, "--type=merge", "-p",
                json.dumps({"spec": {"successfulJobsHistoryLimit": 1}}))

    def owned() -> list[dict[str, Any]]:
        return [j for j in kubectl.json("get", "jobs", "-n", namespace)["items"]
                if (j["metadata"].get("ownerReferences") or [{}])[0].get("name") == "tick"]
    started = time.monotonic()
    first = wait_for(owned, 70, "the CronJob's first Job", interval=1)[0]
    assert time.monotonic() - started <= 70
    first_name = first["metadata"]["name"]
    assert first_name.startswith("tick-") and first["metadata"]["annotations"][
        "batch.kubernetes.io/cronjob-scheduled-timestamp"].endswith("Z")

    def second_kept() -> list[str] | None:
        jobs = owned()
        complete = [j["metadata"]["name"] for j in jobs if ("Complete", "True", "CompletionsReached") in conditions(j)]
        return complete if first_name not in [j["metadata"]["name"] for j in jobs] and complete else None
    kept = wait_for(second_kept, 150, "a second run and the first Job removed", interval=2)
    assert len(kept) == 1 and kept[0] != first_name
    status = kubectl.json("get", "cronjob", "tick", "-n", namespace)["status"]
    assert status["lastScheduleTime"] and status["lastSuccessfulTime"]
    table = kubectl.run("get", "cronjob", "tick", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"]
    assert table[1].split()[:5] == ["tick", "*/1", "*", "*", "*"]
    events = kubectl.run("describe", "cronjob", "tick", "-n", namespace).stdout
    assert "SuccessfulCreate" in events and "SawCompletedJob" in events and "SuccessfulDelete" in events
    kubectl.run("delete", "cronjob", "tick", "-n", namespace)
    wait_for(lambda: owned() == [], 60, "the CronJob's Jobs to go with it", interval=1)
