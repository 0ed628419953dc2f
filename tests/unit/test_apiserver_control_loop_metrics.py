"""The server's control loops on one set of shared informers, recording into /metrics: controller syncs,
queue depth and scheduling attempts, scraped from a real API (SQLite in a temporary dir)."""
from __future__ import annotations

import asyncio
import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apiserver.api import API
from apiserver.http.metrics import ServerMetrics
from apiserver.informer import RegistryInformer, SharedInformers, share_strings
from apiserver.controllers.node_lifecycle import LifecycleConfig
from apiserver.controllers.manager import ControllerContext, start_controllers
from apiserver.storage.sqlite import SQLiteStorage


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    yield api
    await storage.close()


async def scrape(api: API) -> dict[tuple[str, tuple], float]:
    text = (await ServerMetrics(api).render()).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def sample(samples: dict, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


async def eventually(check, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_control_loops_share_informers_and_record_syncs_and_scheduling(api):
    before = await scrape(api)
    informers = SharedInformers()
    tasks = start_controllers(ControllerContext(api, informers, LifecycleConfig()), [
        "scheduler", "node-lifecycle-controller", "resourcequota-controller", "endpoints-controller",
        "endpointslice-controller", "endpointslice-mirroring-controller", "replicaset-controller",
        "replication-controller", "deployment-controller", "garbage-collector"])
    try:
        pod_informers = [i for i in informers._informers.values() if i.registry is api.pods]
        assert len(pod_informers) == 1   # one watch and one cache of pods for every loop
        await api.create(api.nodes, "", {"metadata": {"name": "n1"}, "status": {
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]}})
        await api.create(api.services, "default", {"metadata": {"name": "web"},
                                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        await api.create(api.pods, "default", {"metadata": {"name": "p", "labels": {"app": "web"}},
                                               "spec": {"containers": [{"name": "c", "image": "x"}]}})
        await api.create(api.pods, "default", {"metadata": {"name": "huge"}, "spec": {"containers": [
            {"name": "c", "image": "x", "resources": {"requests": {"cpu": "64"}}}]}})

        async def bound_and_synced() -> bool:
            pod = await api.pods.get("default", "p")
            samples = await scrape(api)
            return bool(pod["spec"].get("nodeName")) and sample(
                samples, "workqueue_work_duration_seconds_count", name="endpoints-controller") > sample(
                before, "workqueue_work_duration_seconds_count", name="endpoints-controller") and sample(
                samples, "scheduler_scheduling_attempt_duration_seconds_count", result="unschedulable",
                profile="default-scheduler") > 0
        await eventually(bound_and_synced)
        after = await scrape(api)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def grew(metric: str, **labels: str) -> float:
        return sample(after, metric, **labels) - sample(before, metric, **labels)

    scheduled = dict(result="scheduled", profile="default-scheduler")
    assert grew("scheduler_scheduling_attempt_duration_seconds_count", **scheduled) >= 1
    assert grew("scheduler_scheduling_attempt_duration_seconds_sum", **scheduled) > 0
    assert grew("scheduler_scheduling_attempt_duration_seconds_bucket", le="+Inf", **scheduled) >= 1
    for controller in ("endpoints-controller", "endpointslice-controller", "garbage-collector"):
        assert grew("workqueue_work_duration_seconds_count", name=controller) >= 1, controller
        assert ("workqueue_depth", (("name", controller),)) in after, controller


def test_share_strings_makes_equal_objects_share_keys_and_values():
    raw = json.dumps({"spec": {"containers": [{"name": "app", "imagePullPolicy": "IfNotPresent",
                                                "command": ["sleep", "3600"]}], "dnsPolicy": "ClusterFirst"}})
    first, second = json.loads(raw), json.loads(raw)
    expected = json.loads(raw)
    assert first["spec"]["dnsPolicy"] is not second["spec"]["dnsPolicy"]
    share_strings(first)
    share_strings(second)
    assert first == second == expected
    assert list(first["spec"]) == ["containers", "dnsPolicy"]   # order kept
    assert first["spec"]["dnsPolicy"] is second["spec"]["dnsPolicy"]
    key_of = {id(k) for k in first["spec"]["containers"][0]}
    assert key_of == {id(k) for k in second["spec"]["containers"][0]}
    assert first["spec"]["containers"][0]["command"][0] is second["spec"]["containers"][0]["command"][0]


async def test_informer_caches_objects_with_shared_strings(api):
    informer = RegistryInformer(api.pods)
    task = asyncio.create_task(informer.run())
    try:
        for name in ("a", "b"):
            await api.create(api.pods, "default", {"metadata": {"name": name},
                                                   "spec": {"containers": [{"name": "c", "image": "x"}]}})

        async def both_cached() -> bool:
            return {"default/a", "default/b"} <= set(informer.cache)
        await eventually(both_cached)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    a, b = informer.cache["default/a"], informer.cache["default/b"]
    assert a["spec"]["dnsPolicy"] is b["spec"]["dnsPolicy"]
    assert a["spec"]["containers"][0]["terminationMessagePath"] is b["spec"]["containers"][0]["terminationMessagePath"]


async def test_metadata_only_informers_keep_metadata_unless_a_consumer_wants_whole_objects(api):
    """The garbage collector's informers hold only metadata (upstream's metadata informers), except on a
    resource another loop watches whole: there one cache of whole objects serves both."""
    informers = SharedInformers()
    seen: list[dict] = []
    config_maps = informers.informer(api.registry("", "configmaps"), lambda _type, obj, _old: seen.append(obj),
                                     metadata_only=True)
    pods = informers.informer(api.pods, lambda _type, _obj, _old: None, metadata_only=True)
    assert informers.informer(api.pods, lambda _type, _obj, _old: None) is pods   # a whole-object consumer
    assert config_maps.metadata_only and not pods.metadata_only
    task = asyncio.create_task(informers.run())
    try:
        await api.create(api.registry("", "configmaps"), "default", {
            "metadata": {"name": "cm", "labels": {"a": "b"}, "finalizers": ["example.com/keep"]},
            "data": {"k": "v"}})
        await api.create(api.pods, "default", {"metadata": {"name": "p"},
                                               "spec": {"containers": [{"name": "c", "image": "x"}]}})

        async def both_cached() -> bool:
            return "default/cm" in config_maps.cache and "default/p" in pods.cache
        await eventually(both_cached)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    stored = await api.registry("", "configmaps").get("default", "cm")
    partial = config_maps.cache["default/cm"]
    assert set(partial) == {"apiVersion", "kind", "metadata"}
    assert partial["metadata"] == {k: v for k, v in stored["metadata"].items() if k != "managedFields"}
    assert seen[-1] is partial
    assert pods.cache["default/p"]["spec"]["containers"][0]["name"] == "c"
