"""Service allocation and the endpoint controllers in process, over a real SQLite store."""
import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.manager import ControllerContext, start_controllers
from apiserver.registry import DeleteOptions
from apiserver.storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path):
    store = SQLiteStorage(str(tmp_path / "state.db"))
    await store.start()
    server_api = API(store, service_node_port_range=(30000, 30002))
    await server_api.start()
    yield server_api
    await store.close()


def node_port_service(name, node_port=None, **meta):
    port = {"port": 80, **({"nodePort": node_port} if node_port else {})}
    return {"metadata": {"name": name, **meta}, "spec": {"type": "NodePort", "selector": {"app": name},
                                                         "ports": [port]}}


async def test_claims_follow_what_storage_holds(api):
    owners = api.service_allocator.node_ports.range
    await api.create(api.services, "default", node_port_service("a", 30000))
    with pytest.raises(errors.APIError) as caught:  # AlreadyExists after admit claimed 30001: released
        await api.create(api.services, "default", node_port_service("a", 30001))
    assert caught.value.code == 409 and owners.owner(30001) is None
    await api.create(api.services, "default", node_port_service("dry", 30001), dry_run=True)
    assert owners.owner(30001) is None
    created = await api.create(api.services, "default", node_port_service("", generateName="gen-"))
    name = created["metadata"]["name"]
    assert name.startswith("gen-") and owners.owner(created["spec"]["ports"][0]["nodePort"]) == f"default/{name}"
    await api.create(api.services, "default", node_port_service("b"))
    with pytest.raises(errors.APIError) as caught:  # the range (3 ports) is full now
        await api.create(api.services, "default", node_port_service("c"))
    assert caught.value.code == 422 and "range is full" in caught.value.message
    await api.patch(api.services, "default", "a", "application/merge-patch+json", {"spec": {"type": "ClusterIP"}})
    assert owners.owner(30000) is None
    await api.delete(api.services, "default", name, DeleteOptions())
    assert owners.values(f"default/{name}") == set()


async def test_concurrent_requests_for_one_node_port(api):
    results = await asyncio.gather(*(api.create(api.services, "default", node_port_service(f"s{i}", 30002))
                                     for i in range(10)), return_exceptions=True)
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert {r.code for r in results if isinstance(r, Exception)} == {422}


async def eventually(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.05)


async def test_controllers_follow_pods_and_clean_up(api):
    tasks = start_controllers(ControllerContext(api), ["endpoints-controller", "endpointslice-controller",
                                                       "endpointslice-mirroring-controller"])
    try:
        await api.create(api.services, "default", {"metadata": {"name": "web"},
                                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
        for index in range(3):
            await api.create(api.pods, "default", {"metadata": {"name": f"p{index}", "labels": {"app": "web"}},
                                                   "spec": {"containers": [{"name": "c", "image": "x"}]}})
            await api.patch(api.pods, "default", f"p{index}", "application/merge-patch+json",
                            {"status": {"podIP": f"10.244.0.{index + 1}",
                                        "conditions": [{"type": "Ready", "status": "True"}]}}, "status")

        async def ready_ips():
            try:
                endpoints = await api.endpoints.get("default", "web")
            except errors.APIError:
                return None
            return [a["ip"] for s in endpoints.get("subsets", []) for a in s.get("addresses", [])]

        async def three_ready():
            return await ready_ips() == ["10.244.0.1", "10.244.0.2", "10.244.0.3"]
        await eventually(three_ready)
        slices, _ = await api.endpoint_slices.list("default")
        assert len([s for s in slices if s["metadata"]["name"].startswith("web-")]) == 1
        await api.delete(api.pods, "default", "p1", DeleteOptions(grace_period_seconds=0))

        async def two_ready():
            return await ready_ips() == ["10.244.0.1", "10.244.0.3"]
        await eventually(two_ready)
        await api.delete(api.services, "default", "web", DeleteOptions())

        async def cleaned():
            slices, _ = await api.endpoint_slices.list("default")
            return await ready_ips() is None and not [s for s in slices if s["metadata"]["name"].startswith("web-")]
        await eventually(cleaned)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
