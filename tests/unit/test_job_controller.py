"""The Job, CronJob and TTL-after-finished controllers against a real in-process API (SQLite storage), with a
small fake kubelet that moves the pods through their phases."""
from __future__ import annotations

import asyncio
import datetime
from typing import Any, Callable

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import cronjob as cronjob_module
from apiserver.controllers import job_rules
from apiserver.controllers.cronjob import CronJobController
from apiserver.controllers.manager import ControllerContext, start_controllers
from apiserver.informer import SharedInformers
from apiserver.registry import DeleteOptions
from apiserver.storage.sqlite import SQLiteStorage
from shipmate.timeutil import rfc3339

NS = "default"


@pytest.fixture
async def api(tmp_path, monkeypatch):
    monkeypatch.setattr(job_rules, "DEFAULT_POD_FAILURE_BACKOFF", 0.2)
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    try:
        await api.create(api.namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    except errors.APIError:
        pass
    tasks = start_controllers(ControllerContext(api, SharedInformers()),
                              ["job-controller", "garbage-collector", "ttl-after-finished-controller"])
    yield api
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await storage.close()


def jobs(api: API):
    return api.registry("batch", "jobs")


def job_body(name: str, command: str = "true", **spec: Any) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                                           "containers": [{"name": "c", "image": "busybox", "command": [command]}]}},
                     **spec}}


async def until(check: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await check()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}; last: {value!r}"
        await asyncio.sleep(0.05)


async def pods_of(api: API, job_name: str) -> list[dict]:
    items, _ = await api.pods.list(NS, labels=_selector(f"job-name={job_name}"))
    return items


def _selector(text: str):
    from shipmate.selectors import parse_label_selector
    return parse_label_selector(text)


async def finish_pod(api: API, pod: dict, phase: str, exit_code: int = 0) -> None:
    now = rfc3339(datetime.datetime.now(datetime.timezone.utc))

    def change(current: dict) -> dict:
        current["status"] = {**(current.get("status") or {}), "phase": phase,
                             "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now}],
                             "containerStatuses": [{"name": "c", "ready": False, "restartCount": 0, "image": "busybox",
                                                    "imageID": "", "state": {"terminated": {
                                                        "exitCode": exit_code, "finishedAt": now, "startedAt": now}}}]}
        return current
    await api.pods.guaranteed_update(NS, pod["metadata"]["name"], change, subresource="status")


class FakeKubelet:
    """Ends every new pod of the namespace with `decide(pod)` ("Succeeded"/"Failed", or None to leave it) after
    `delay`, and records the most pods it ever saw active at once."""

    def __init__(self, api: API, decide: Callable[[dict], str | None], delay: float = 0.2):
        self.api, self.decide, self.delay = api, decide, delay
        self.max_active = 0
        self.seen: set[str] = set()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> "FakeKubelet":
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        first_seen: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while True:
            items, _ = await self.api.pods.list(NS)
            active = [p for p in items if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
                      and not p["metadata"].get("deletionTimestamp")]
            self.max_active = max(self.max_active, len(active))
            for pod in active:
                uid = pod["metadata"]["uid"]
                self.seen.add(uid)
                started = first_seen.setdefault(uid, loop.time())
                if loop.time() - started >= self.delay:
                    phase = self.decide(pod)
                    if phase:
                        try:
                            await finish_pod(self.api, pod, phase, 0 if phase == "Succeeded" else 1)
                        except errors.APIError:
                            pass
            await asyncio.sleep(0.05)


def conditions(job: dict) -> list[tuple[str, str, str]]:
    return [(c["type"], c["status"], c.get("reason", "")) for c in (job.get("status") or {}).get("conditions") or []]


async def get_job(api: API, name: str) -> dict:
    return await jobs(api).get(NS, name)


async def test_completions_5_parallelism_2_succeeds_with_exactly_5_pods(api):
    await api.create(jobs(api), NS, job_body("five", completions=5, parallelism=2))
    async with FakeKubelet(api, lambda pod: "Succeeded") as kubelet:
        done = await until(lambda: _finished(api, "five"), "job five to complete")
    assert conditions(done) == [("SuccessCriteriaMet", "True", "CompletionsReached"),
                                ("Complete", "True", "CompletionsReached")]
    status = done["status"]
    assert status["succeeded"] == 5 and "failed" not in status and status["ready"] == 0
    assert status["terminating"] == 0 and status["uncountedTerminatedPods"] == {}
    assert status["completionTime"] >= status["startTime"]
    pods = await pods_of(api, "five")
    assert len(pods) == 5 and all(p["status"]["phase"] == "Succeeded" for p in pods)
    assert kubelet.max_active <= 2 and len(kubelet.seen) == 5
    assert all(not p["metadata"].get("finalizers") for p in pods)  # every pod counted, then released


async def _finished(api: API, name: str) -> dict | None:
    job = await get_job(api, name)
    return job if job_rules.is_finished(job) else None


async def test_failing_job_stops_at_backoff_limit(api):
    await api.create(jobs(api), NS, job_body("failing", backoffLimit=2))
    async with FakeKubelet(api, lambda pod: "Failed"):
        done = await until(lambda: _finished(api, "failing"), "job failing to fail")
    assert conditions(done) == [("FailureTarget", "True", "BackoffLimitExceeded"),
                                ("Failed", "True", "BackoffLimitExceeded")]
    assert done["status"]["failed"] == 3 and "succeeded" not in done["status"]
    assert "completionTime" not in done["status"]
    assert len(await pods_of(api, "failing")) == 3
    events, _ = await api.events.list(NS)
    assert any(e["reason"] == "BackoffLimitExceeded" and e["message"] == "Job has reached the specified backoff limit"
               for e in events)


async def test_indexed_job_gives_each_pod_its_index(api):
    await api.create(jobs(api), NS, job_body("idx", completions=3, parallelism=3, completionMode="Indexed"))
    async with FakeKubelet(api, lambda pod: "Succeeded"):
        done = await until(lambda: _finished(api, "idx"), "indexed job to complete")
    assert done["status"]["completedIndexes"] == "0-2" and done["status"]["succeeded"] == 3
    pods = await pods_of(api, "idx")
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] for p in pods)
    assert indexes == ["0", "1", "2"]
    for pod in pods:
        index = pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"]
        assert pod["spec"]["hostname"] == f"idx-{index}" and pod["metadata"]["name"].startswith(f"idx-{index}-")
        assert pod["spec"]["containers"][0]["env"][-1]["name"] == "JOB_COMPLETION_INDEX"


async def test_a_succeeded_pod_deleted_before_counting_is_not_lost(api):
    await api.create(jobs(api), NS, job_body("keep"))
    pod = (await until(lambda: pods_of(api, "keep"), "the pod"))[0]
    # the finalizer keeps the pod until the controller has counted it, even if it is deleted at once
    await finish_pod(api, pod, "Succeeded")
    await api.delete(api.pods, NS, pod["metadata"]["name"], DeleteOptions(grace_period_seconds=0))
    done = await until(lambda: _finished(api, "keep"), "job keep to complete")
    assert done["status"]["succeeded"] == 1 and conditions(done)[-1][:2] == ("Complete", "True")
    assert await until(lambda: _gone(api, pod["metadata"]["name"]), "the counted pod to go")
    assert len(await pods_of(api, "keep")) == 0  # no replacement was created


async def _gone(api: API, name: str) -> bool:
    try:
        await api.pods.get(NS, name)
    except errors.APIError as exc:
        return exc.code == 404
    return False


async def test_suspend_and_resume(api):
    await api.create(jobs(api), NS, job_body("sleepy", suspend=True))
    suspended = await until(lambda: _with_condition(api, "sleepy", "Suspended", "True"), "Suspended condition")
    assert ("Suspended", "True", "JobSuspended") in conditions(suspended) and "startTime" not in suspended["status"]
    assert await pods_of(api, "sleepy") == []
    await jobs(api).guaranteed_update(NS, "sleepy", lambda j: {**j, "spec": {**j["spec"], "suspend": False}})
    resumed = await until(lambda: _with_condition(api, "sleepy", "Suspended", "False"), "resumed")
    assert ("Suspended", "False", "JobResumed") in conditions(resumed) and resumed["status"]["startTime"]
    assert len(await until(lambda: pods_of(api, "sleepy"), "a pod after resume")) == 1
    # suspending again deletes the active pod
    await jobs(api).guaranteed_update(NS, "sleepy", lambda j: {**j, "spec": {**j["spec"], "suspend": True}})
    await until(lambda: _no_pods(api, "sleepy"), "the pod deleted on suspend")


async def _no_pods(api: API, name: str) -> bool:
    return not await pods_of(api, name)


async def _with_condition(api: API, name: str, kind: str, status: str) -> dict | None:
    job = await get_job(api, name)
    return job if any(c[0] == kind and c[1] == status for c in conditions(job)) else None


async def test_active_deadline_fails_the_job_and_stops_its_pods(api):
    await api.create(jobs(api), NS, job_body("late", activeDeadlineSeconds=1))
    done = await until(lambda: _finished(api, "late"), "the deadline")
    assert conditions(done)[-1] == ("Failed", "True", "DeadlineExceeded")
    assert done["status"]["failed"] == 1
    await until(lambda: _no_pods(api, "late"), "the pod to be deleted")


async def test_pod_failure_policy_fails_the_job_at_once(api):
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [1]}}]}
    await api.create(jobs(api), NS, job_body("policed", podFailurePolicy=policy))
    async with FakeKubelet(api, lambda pod: "Failed"):
        done = await until(lambda: _finished(api, "policed"), "the policy to fail the job")
    reason = conditions(done)[-1]
    assert reason == ("Failed", "True", "PodFailurePolicy")
    assert done["status"]["conditions"][-1]["message"].endswith("failed with exit code 1 matching FailJob rule at index 0")


async def test_ttl_deletes_the_finished_job_and_gc_its_pods(api):
    await api.create(jobs(api), NS, job_body("brief", ttlSecondsAfterFinished=1))
    async with FakeKubelet(api, lambda pod: "Succeeded"):
        await until(lambda: _finished(api, "brief"), "job brief to complete")
    await until(lambda: _job_gone(api, "brief"), "the TTL to delete the job")
    await until(lambda: _no_pods(api, "brief"), "its pods to go")


async def _job_gone(api: API, name: str) -> bool:
    try:
        await get_job(api, name)
    except errors.APIError as exc:
        return exc.code == 404
    return False


async def test_deleting_a_running_job_in_the_background_removes_its_pods(api):
    await api.create(jobs(api), NS, job_body("doomed", parallelism=2, completions=2))
    await until(lambda: _pod_count(api, "doomed", 2), "two pods")
    await api.delete(jobs(api), NS, "doomed", DeleteOptions(propagation_policy="Background"))
    # the GC deletes the pods; the Job controller releases their tracking finalizers
    await until(lambda: _no_pods(api, "doomed"), "the pods to go with their job")


async def _pod_count(api: API, name: str, count: int) -> bool:
    return len(await pods_of(api, name)) == count


async def test_cronjob_creates_jobs_at_schedule_times_and_keeps_history(tmp_path, monkeypatch):
    storage = SQLiteStorage(str(tmp_path / "cron.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    try:
        await api.create(api.namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    except errors.APIError:
        pass
    clock = {"now": datetime.datetime.now(datetime.timezone.utc)}
    monkeypatch.setattr(cronjob_module, "utc_now", lambda: clock["now"])
    informers = SharedInformers()
    controller = CronJobController(api, informers)
    tasks = [asyncio.create_task(controller.run()), asyncio.create_task(informers.run())]
    try:
        cronjobs = api.registry("batch", "cronjobs")
        created = await api.create(cronjobs, NS, {
            "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
            "spec": {"schedule": "*/1 * * * *", "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1,
                     "concurrencyPolicy": "Allow",
                     "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure", "containers": [
                         {"name": "c", "image": "busybox"}]}}}}}})
        start = datetime.datetime.fromisoformat(created["metadata"]["creationTimestamp"].replace("Z", "+00:00"))
        names = []
        for minute in range(1, 5):
            clock["now"] = start.replace(second=0) + datetime.timedelta(minutes=minute, seconds=1)
            controller.enqueue(f"{NS}/tick")
            expected = f"tick-{int((start.replace(second=0) + datetime.timedelta(minutes=minute)).timestamp()) // 60}"
            names.append(expected)
            job = await until(lambda: _maybe_job(api, expected), f"job {expected}")
            assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
            # the job completes (its controller is not running here: written by hand)
            stamp = rfc3339(clock["now"])
            job["status"] = {"startTime": stamp, "completionTime": stamp, "succeeded": 1, "conditions": [
                {"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}
            await jobs(api).update(NS, expected, job, subresource="status")
        cronjob = await until(lambda: _history(api, 2), "the history limit")
        remaining = sorted(j["metadata"]["name"] for j in (await jobs(api).list(NS))[0])
        assert remaining == sorted(names[-2:])
        assert cronjob["status"]["lastScheduleTime"] == rfc3339(
            start.replace(second=0) + datetime.timedelta(minutes=4))
        assert "active" not in cronjob["status"] and cronjob["status"]["lastSuccessfulTime"]
        events, _ = await api.events.list(NS)
        reasons = {e["reason"] for e in events}
        assert {"SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"} <= reasons
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await storage.close()


async def _maybe_job(api: API, name: str) -> dict | None:
    try:
        return await get_job(api, name)
    except errors.APIError:
        return None


async def _history(api: API, count: int) -> dict | None:
    items, _ = await jobs(api).list(NS)
    cronjob = await api.registry("batch", "cronjobs").get(NS, "tick")
    done = len(items) == count and not (cronjob.get("status") or {}).get("active") and \
        (cronjob.get("status") or {}).get("lastSuccessfulTime")
    return cronjob if done else None
