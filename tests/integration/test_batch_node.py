"""Jobs and CronJobs with real pods: a private node (own netns, containerd, server and agent) runs this branch's
server, controllers and agent; kubectl drives it. The workloads acceptance points: 5 completions at parallelism 2
succeed with exactly 5 pods, a failing Job stops at backoffLimit with BackoffLimitExceeded, a `*/1 * * * *`
CronJob creates a Job within 70 s and keeps its history limit; plus Indexed Jobs (JOB_COMPLETION_INDEX through
the downward API), `kubectl create job|cronjob`, `--from=cronjob/x`, `wait`, `logs job/x` and cascading delete."""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NAME = "batch-node"


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NAME) as private:
        yield private


def job(name: str, script: str, **spec: Any) -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"template": {"spec": {
                           "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                           "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                           "command": ["sh", "-c", script]}]}}, **spec}})


def pods(node: PrivateNode, job_name: str) -> list[dict[str, Any]]:
    return node.json("get", "pods", "-l", f"batch.kubernetes.io/job-name={job_name}")["items"]


def conditions(obj: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in (obj.get("status") or {}).get("conditions") or []]


def finished(node: PrivateNode, name: str) -> dict[str, Any] | None:
    obj = node.json("get", "job", name)
    done = any(c[0] in ("Complete", "Failed") and c[1] == "True" for c in conditions(obj))
    return obj if done else None


class RunningSampler:
    """Counts the job's pods in phase Running every ~0.3 s while it runs."""

    def __init__(self, node: PrivateNode, job_name: str):
        self.node, self.job_name = node, job_name
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                running = [p for p in pods(self.node, self.job_name) if p["status"].get("phase") == "Running"]
                self.samples.append(len(running))
            except Exception:  # noqa: BLE001 - a failed sample is just skipped
                pass
            time.sleep(0.3)

    def __enter__(self) -> "RunningSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def test_five_completions_at_parallelism_two_succeed_with_exactly_five_pods(node: PrivateNode) -> None:
    node.kubectl("apply", "-f", "-", stdin=job("five", "sleep 2; echo done", completions=5, parallelism=2))
    with RunningSampler(node, "five") as sampler:
        done = wait_for(lambda: finished(node, "five"), 180, "job five to finish", interval=1)
    assert conditions(done) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    assert done["status"]["succeeded"] == 5 and "failed" not in done["status"]
    created = pods(node, "five")
    assert len(created) == 5 and [p["status"]["phase"] for p in created] == ["Succeeded"] * 5
    assert all(not p["metadata"].get("finalizers") for p in created)
    assert max(sampler.samples, default=0) <= 2 and 2 in sampler.samples
    table = node.kubectl("get", "job", "five").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["five", "Complete", "5/5"]


def test_failing_job_stops_at_backoff_limit(node: PrivateNode) -> None:
    node.kubectl("apply", "-f", "-", stdin=job("fails", "echo boom; exit 3", backoffLimit=1))
    done = wait_for(lambda: finished(node, "fails"), 120, "job fails to fail", interval=1)
    assert conditions(done) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                ("Failed", "True", "BackoffLimitExceeded")]
    assert done["status"]["failed"] == 2
    failed = pods(node, "fails")
    assert len(failed) == 2 and {p["status"]["phase"] for p in failed} == {"Failed"}
    # the replacement waited for the back-off (10 s after the first failure)
    first, second = sorted(failed, key=lambda p: p["metadata"]["creationTimestamp"])
    finished_at = first["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert second["metadata"]["creationTimestamp"] >= finished_at
    assert node.kubectl("get", "job", "fails").stdout.splitlines()[1].split()[:3] == ["fails", "Failed", "0/1"]
    events = node.kubectl("describe", "job", "fails").stdout
    assert "BackoffLimitExceeded" in events and "Job has reached the specified backoff limit" in events


def test_indexed_job_pods_see_their_completion_index(node: PrivateNode) -> None:
    node.kubectl("apply", "-f", "-", stdin=job("idx", 'echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"',
                                               completions=3, parallelism=3, completionMode="Indexed"))
    done = wait_for(lambda: finished(node, "idx"), 120, "indexed job to finish", interval=1)
    assert done["status"]["completedIndexes"] == "0-2"
    lines = set()
    for pod in pods(node, "idx"):
        lines.add(node.kubectl("logs", pod["metadata"]["name"]).stdout.strip())
    assert lines == {"index=0 host=idx-0", "index=1 host=idx-1", "index=2 host=idx-2"}


def test_kubectl_create_wait_logs_and_cascading_delete(node: PrivateNode) -> None:
    node.kubectl("create", "job", "hello", f"--image={BUSYBOX}", "--", "sh", "-c", "echo hello from the job")
    node.kubectl("wait", "--for=condition=complete", "job/hello", "--timeout=120s")
    assert node.kubectl("logs", "job/hello").stdout.strip() == "hello from the job"
    # a long-running job's pods go with it
    node.kubectl("create", "job", "sleeper", f"--image={BUSYBOX}", "--", "sleep", "3600")
    wait_for(lambda: [p for p in pods(node, "sleeper") if p["status"].get("phase") == "Running"], 90,
             "the sleeper pod running", interval=0.5)
    node.kubectl("delete", "job", "sleeper", "--wait=true", "--timeout=90s")
    wait_for(lambda: pods(node, "sleeper") == [], 90, "the sleeper's pods to be deleted", interval=0.5)


def owned_jobs(node: PrivateNode, cronjob: str) -> list[dict[str, Any]]:
    return [j for j in node.json("get", "jobs")["items"]
            if (j["metadata"].get("ownerReferences") or [{}])[0].get("name") == cronjob]


def test_manual_run_from_a_cronjob(node: PrivateNode) -> None:
    node.kubectl("create", "cronjob", "nightly", f"--image={BUSYBOX}", "--schedule=@daily", "--",
                 "sh", "-c", "echo manual run")
    node.kubectl("create", "job", "nightly-now", "--from=cronjob/nightly")
    node.kubectl("wait", "--for=condition=complete", "job/nightly-now", "--timeout=120s")
    manual = node.json("get", "job", "nightly-now")
    assert manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"] == "manual"
    assert manual["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    assert node.kubectl("logs", "job/nightly-now").stdout.strip() == "manual run"
