"""PodDisruptionBudgets: the pure rules (kinds/disruption_rules.py), then the disruption controller and the
eviction subresource on a real API (SQLite in a temporary dir)."""
from __future__ import annotations

import asyncio
import datetime

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.manager import ControllerContext, start_controllers
from apiserver.eviction import evict
from apiserver.kinds import disruption_rules as rules
from apiserver.storage.sqlite import SQLiteStorage
from shipmate.timeutil import rfc3339

NOW = datetime.datetime(2026, 1, 1, 0, 10, tzinfo=datetime.timezone.utc)


def pod(name, ready=True, labels=None, owner=None, deleting=False, phase="Running"):
    meta = {"name": name, "namespace": "default", "labels": labels or {"app": "web"}}
    if owner:
        meta["ownerReferences"] = [{"apiVersion": owner[0], "kind": owner[1], "name": owner[2], "uid": owner[3],
                                    "controller": True}]
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": {"phase": phase, "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def budget(generation=1, status=None, **spec):
    return {"metadata": {"name": "pdb", "namespace": "default", "generation": generation},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": status or {}}


RS = ("apps/v1", "ReplicaSet", "web-rs", "rs-uid")


# --- pure rules --------------------------------------------------------------------------------------------
def test_selectors_missing_selects_nothing_empty_selects_all():
    assert rules.selects(budget(), {"app": "web"}) and not rules.selects(budget(), {"app": "db"})
    assert not rules.selects({"metadata": {}, "spec": {}}, {"app": "web"})
    assert rules.selects({"metadata": {}, "spec": {"selector": {}}}, {"anything": "x"})
    bad = {"metadata": {}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}}
    assert not rules.selects(bad, {"a": "b"})


def test_int_min_available_counts_the_selected_pods():
    pods = [pod("a"), pod("b"), pod("c", ready=False)]
    expected, desired, unmanaged = rules.expected_and_desired(budget(minAvailable=2), pods, {})
    assert (expected, desired, unmanaged) == (3, 2, [])
    counts = rules.Counts(rules.count_healthy(pods, {}, NOW), desired, expected)
    assert counts.current_healthy == 2 and counts.disruptions_allowed == 0
    assert rules.Counts(3, 2, 3).disruptions_allowed == 1
    assert rules.Counts(3, 0, 0).disruptions_allowed == 0  # no pod expected yet: nothing may be disrupted


def test_percentages_and_max_unavailable_use_the_controllers_scale_rounding_up():
    pods = [pod("a", owner=RS), pod("b", owner=RS)]
    scales = {"rs-uid": ("deploy-uid", 5)}
    assert rules.expected_and_desired(budget(minAvailable="50%"), pods, scales) == (5, 3, [])
    assert rules.expected_and_desired(budget(maxUnavailable="30%"), pods, scales) == (5, 3, [])
    assert rules.expected_and_desired(budget(maxUnavailable=1), pods, scales) == (5, 4, [])
    assert rules.expected_and_desired(budget(maxUnavailable=9), pods, scales) == (5, 0, [])
    # two ReplicaSets of one Deployment count the Deployment once
    other = ("apps/v1", "ReplicaSet", "web-rs2", "rs2-uid")
    both = {"rs-uid": ("deploy-uid", 5), "rs2-uid": ("deploy-uid", 5)}
    assert rules.expected_and_desired(budget(maxUnavailable=0), pods + [pod("c", owner=other)], both)[0] == 5
    # unmanaged pods are reported, not counted
    assert rules.expected_and_desired(budget(maxUnavailable=1), pods + [pod("bare")], scales) == (5, 4, ["bare"])
    with pytest.raises(rules.DisruptionError, match='found no controllers for pod "a"'):
        rules.expected_and_desired(budget(maxUnavailable=1), pods, {"rs-uid": None})
    assert rules.expected_and_desired(budget(), pods, scales) == (0, 0, [])


def test_recent_evictions_do_not_count_as_healthy_and_expire_after_two_minutes():
    recent, old = rfc3339(NOW - datetime.timedelta(seconds=30)), rfc3339(NOW - datetime.timedelta(minutes=3))
    pods = [pod("a"), pod("b"), pod("c"), pod("d", deleting=True)]
    pdb = budget(status={"disruptedPods": {"a": recent, "b": old, "d": recent, "gone": recent}})
    kept, recheck, overdue = rules.disrupted_pod_map(pdb, pods, NOW)
    assert kept == {"a": recent} and overdue == ["b"]
    assert recheck == NOW - datetime.timedelta(seconds=30) + rules.DELETION_TIMEOUT
    assert rules.count_healthy(pods, kept, NOW) == 2  # b and c; a is being evicted, d is being deleted


def test_status_and_condition_follow_the_counts():
    pdb = budget(generation=2, minAvailable=1)
    status = rules.new_status(pdb, rules.Counts(2, 1, 2), {}, NOW)
    assert {k: status[k] for k in ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed",
                                   "observedGeneration")} == \
        {"currentHealthy": 2, "desiredHealthy": 1, "expectedPods": 2, "disruptionsAllowed": 1, "observedGeneration": 2}
    assert status["conditions"] == [{"type": "DisruptionAllowed", "status": "True", "observedGeneration": 2,
                                     "lastTransitionTime": rfc3339(NOW), "reason": "SufficientPods", "message": ""}]
    assert "disruptedPods" not in status
    synced = {**pdb, "status": status}
    assert rules.new_status(synced, rules.Counts(2, 1, 2), {}, NOW + datetime.timedelta(seconds=5)) is None
    later = NOW + datetime.timedelta(seconds=9)
    spent = rules.decremented(synced, "a", later, dry_run=False)
    assert spent["disruptionsAllowed"] == 0 and spent["disruptedPods"] == {"a": rfc3339(later)}
    condition = spent["conditions"][0]
    assert (condition["status"], condition["reason"], condition["lastTransitionTime"]) == \
        ("False", "InsufficientPods", rfc3339(later))
    assert "disruptedPods" not in rules.decremented(synced, "a", later, dry_run=True)
    failed = rules.fail_safe_status(synced, "found no controllers for pod \"a\"", later)
    assert failed["disruptionsAllowed"] == 0 and failed["conditions"][0]["reason"] == "SyncFailed"
    assert failed["conditions"][0]["message"] == 'found no controllers for pod "a"'


# --- controller and eviction on a real API ----------------------------------------------------------------
@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    tasks = start_controllers(ControllerContext(api), ["disruption-controller"])
    yield api
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await storage.close()


async def eventually(check, timeout: float = 10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def running_pod(api: API, name: str, ready: bool = True, labels=None) -> None:
    await api.create(api.pods, "default", {"metadata": {"name": name, "labels": labels or {"app": "web"}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})

    def run(current):
        current["metadata"].pop("resourceVersion", None)
        current["status"] = {"phase": "Running", "conditions": [{"type": "Ready",
                                                                  "status": "True" if ready else "False"}]}
        return current
    await api.pods.guaranteed_update("default", name, run, subresource="status")


async def pdb_status(api: API, name: str = "pdb") -> dict:
    return (await api.registry("policy", "poddisruptionbudgets").get("default", name)).get("status") or {}


EVICTION = {"apiVersion": "policy/v1", "kind": "Eviction"}


async def test_eviction_spends_the_budget_then_answers_429(api):
    await running_pod(api, "a")
    await running_pod(api, "b")
    pdbs = api.registry("policy", "poddisruptionbudgets")
    await api.create(pdbs, "default", {"metadata": {"name": "pdb"},
                                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    status = await eventually(lambda: _synced(api, 1))
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == (2, 1, 2)
    # a dry run spends nothing
    assert (await evict(api, "default", "a", EVICTION, dry_run=True))["status"] == "Success"
    assert (await pdb_status(api))["disruptionsAllowed"] == 1
    assert (await api.pods.get("default", "a"))["metadata"]["name"] == "a"
    assert (await evict(api, "default", "a", {**EVICTION, "deleteOptions": {"gracePeriodSeconds": 0}}))["code"] == 201
    with pytest.raises(errors.APIError) as gone:
        await api.pods.get("default", "a")
    assert gone.value.code == 404
    spent = await pdb_status(api)
    assert spent["disruptionsAllowed"] == 0 and "a" in spent.get("disruptedPods", {}) or \
        spent["currentHealthy"] == 1  # the controller may already have seen the deletion
    with pytest.raises(errors.APIError) as refused:
        await evict(api, "default", "b", EVICTION)
    assert refused.value.code == 429 and refused.value.reason == "TooManyRequests"
    assert refused.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
    cause = refused.value.details["causes"][0]
    assert cause["reason"] == "DisruptionBudget"
    assert cause["message"] in ("The disruption budget pdb needs 1 healthy pods and has 1 currently",
                                "The disruption budget pdb is still being processed by the server.")
    final = await eventually(lambda: _synced(api, 0))
    assert final.get("disruptedPods") is None and final["currentHealthy"] == 1
    assert next(c for c in final["conditions"] if c["type"] == "DisruptionAllowed")["reason"] == "InsufficientPods"


async def _synced(api: API, allowed: int):
    status = await pdb_status(api)
    return status if status.get("observedGeneration") == 1 and status.get("disruptionsAllowed") == allowed and \
        not status.get("disruptedPods") else None


async def test_unready_and_pending_pods_are_evicted_without_spending(api):
    await running_pod(api, "ready")
    await running_pod(api, "sick", ready=False)
    await api.create(api.pods, "default", {"metadata": {"name": "pending", "labels": {"app": "web"}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    pdbs = api.registry("policy", "poddisruptionbudgets")
    await api.create(pdbs, "default", {"metadata": {"name": "pdb"},
                                       "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}}})
    await eventually(lambda: _synced(api, 0))
    assert (await evict(api, "default", "pending", EVICTION))["status"] == "Success"  # Pending: no budget check
    # not ready, but the budget is met (1 healthy ≥ 1 desired): allowed without spending
    await evict(api, "default", "sick", {**EVICTION, "deleteOptions": {"gracePeriodSeconds": 0}})
    assert (await pdb_status(api))["disruptionsAllowed"] == 0
    with pytest.raises(errors.APIError) as refused:
        await evict(api, "default", "ready", EVICTION)
    assert refused.value.code == 429


async def test_always_allow_policy_and_two_budgets(api):
    await running_pod(api, "sick", ready=False)
    pdbs = api.registry("policy", "poddisruptionbudgets")
    await api.create(pdbs, "default", {"metadata": {"name": "pdb"}, "spec": {
        "minAvailable": 5, "selector": {"matchLabels": {"app": "web"}}, "unhealthyPodEvictionPolicy": "AlwaysAllow"}})
    await eventually(lambda: _synced(api, 0))
    await evict(api, "default", "sick", {**EVICTION, "deleteOptions": {"gracePeriodSeconds": 0}})
    await running_pod(api, "x")
    await api.create(pdbs, "default", {"metadata": {"name": "second"},
                                       "spec": {"maxUnavailable": 1, "selector": {}}})
    with pytest.raises(errors.APIError) as refused:
        await evict(api, "default", "x", EVICTION)
    assert refused.value.code == 500
    assert refused.value.message == ("This pod has more than one PodDisruptionBudget, which the eviction "
                                     "subresource does not support.")


async def test_percent_budget_follows_the_deployment_scale(api):
    deployments = api.registry("apps", "deployments")
    deployment = await api.create(deployments, "default", {"metadata": {"name": "web"}, "spec": {
        "replicas": 4, "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    replica_sets = api.registry("apps", "replicasets")
    replica_set = await api.create(replica_sets, "default", {"metadata": {"name": "web-1", "ownerReferences": [{
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": deployment["metadata"]["uid"],
        "controller": True}]}, "spec": {"replicas": 4, "selector": {"matchLabels": {"app": "web"}},
                                        "template": {"metadata": {"labels": {"app": "web"}},
                                                     "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}})
    for name in ("p1", "p2"):
        await running_pod(api, name)
        await api.pods.guaranteed_update("default", name, lambda p: {**p, "metadata": {
            **{k: v for k, v in p["metadata"].items() if k != "resourceVersion"}, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                "uid": replica_set["metadata"]["uid"], "controller": True}]}})
    pdbs = api.registry("policy", "poddisruptionbudgets")
    await api.create(pdbs, "default", {"metadata": {"name": "pdb"},
                                       "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}})

    async def counted():
        status = await pdb_status(api)
        return status if status.get("expectedPods") == 4 else None
    status = await eventually(counted)
    assert (status["desiredHealthy"], status["currentHealthy"], status["disruptionsAllowed"]) == (2, 2, 0)
    # a pod whose controller does not exist: the sync fails safe
    await running_pod(api, "orphan")
    await api.pods.guaranteed_update("default", "orphan", lambda p: {**p, "metadata": {
        **{k: v for k, v in p["metadata"].items() if k != "resourceVersion"}, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "nope", "uid": "nope-uid", "controller": True}]}})

    async def failed():
        status = await pdb_status(api)
        condition = next((c for c in status.get("conditions") or [] if c["type"] == "DisruptionAllowed"), {})
        return condition if condition.get("reason") == "SyncFailed" else None
    condition = await eventually(failed)
    assert condition["message"] == 'found no controllers for pod "orphan"'


async def test_stale_disruption_target_condition_is_reset(tmp_path, monkeypatch):
    import apiserver.controllers.disruption as disruption
    monkeypatch.setattr(disruption, "STALE_DISRUPTION_TIMEOUT", datetime.timedelta(seconds=0.3))
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    tasks = start_controllers(ControllerContext(api), ["disruption-controller"])
    try:
        await running_pod(api, "kept")

        def evicting(current):
            current["metadata"].pop("resourceVersion", None)
            current["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True",
                                                    "reason": "EvictionByEvictionAPI",
                                                    "lastTransitionTime": rfc3339(api.clock())})
            return current
        await api.pods.guaranteed_update("default", "kept", evicting, subresource="status")

        async def reset():
            pod = await api.pods.get("default", "kept")
            return any(c["type"] == "DisruptionTarget" and c["status"] == "False" for c in pod["status"]["conditions"])
        await eventually(reset)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await storage.close()
