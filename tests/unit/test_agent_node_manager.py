"""NodeManager against an in-process fake API and an unreachable runtime: the node registers,
reports Ready=False with the runtime's error, keeps a Lease, and repairs a status the server changed."""
from __future__ import annotations

from typing import Any, AsyncIterator

import pytest
from aiohttp import web

from agent.node_info import NodeFacts
from agent.node_manager import NodeManager, status_differs
from cri.client import CRIClient
from shipmate.kubeclient import KubeClient
from tests.unit.fake_api_server import client_for


class FakeNodeApi:
    def __init__(self) -> None:
        self.node: dict[str, Any] | None = None
        self.lease: dict[str, Any] | None = None
        self.status_patches: list[dict] = []
        self.lease_writes: list[str] = []
        app = web.Application()
        app.router.add_post("/api/v1/nodes", self.create_node)
        app.router.add_get("/api/v1/nodes/{name}", self.get_node)
        app.router.add_patch("/api/v1/nodes/{name}/status", self.patch_status)
        app.router.add_get("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", self.get_lease)
        app.router.add_post("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases", self.create_lease)
        app.router.add_put("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}", self.put_lease)
        self.app = app

    async def create_node(self, request: web.Request) -> web.Response:
        self.node = await request.json()
        self.node["metadata"]["uid"] = "node-uid"
        self.node["spec"]["podCIDR"] = "10.244.3.0/24"
        return web.json_response(self.node, status=201)

    async def get_node(self, request: web.Request) -> web.Response:
        assert self.node is not None
        return web.json_response(self.node)

    async def patch_status(self, request: web.Request) -> web.Response:
        patch = await request.json()
        self.status_patches.append(patch)
        assert self.node is not None
        self.node["status"] = patch["status"]
        return web.json_response(self.node)

    async def get_lease(self, request: web.Request) -> web.Response:
        if self.lease is None:
            return web.json_response({"kind": "Status", "code": 404, "reason": "NotFound", "message": "no"}, status=404)
        return web.json_response(self.lease)

    async def create_lease(self, request: web.Request) -> web.Response:
        self.lease = await request.json()
        self.lease["metadata"]["resourceVersion"] = "1"
        self.lease_writes.append(self.lease["spec"]["renewTime"])
        return web.json_response(self.lease, status=201)

    async def put_lease(self, request: web.Request) -> web.Response:
        body = await request.json()
        assert self.lease is not None and body["metadata"]["resourceVersion"] == self.lease["metadata"]["resourceVersion"]
        body["metadata"]["resourceVersion"] = str(int(body["metadata"]["resourceVersion"]) + 1)
        self.lease = body
        self.lease_writes.append(body["spec"]["renewTime"])
        return web.json_response(body)


@pytest.fixture
async def api() -> AsyncIterator[tuple[FakeNodeApi, KubeClient]]:
    fake = FakeNodeApi()
    async with client_for(fake.app) as client:
        yield fake, client


FACTS = NodeFacts(name="n1", hostname="n1", internal_ip="192.0.2.9", cpus=1, memory_ki=1 << 20,
                  ephemeral_storage_ki=1 << 20, max_pods=10, runtime_version="containerd://1.6.20",
                  labels={"kubernetes.io/hostname": "n1"})


async def test_unreachable_runtime_registers_not_ready_and_renews_lease(api, tmp_path) -> None:
    fake, client = api
    async with CRIClient(f"unix://{tmp_path}/no-such.sock", timeout=2) as runtime:
        manager = NodeManager(client, runtime, FACTS)
        node = await manager.register()
        assert node["spec"]["podCIDR"] == "10.244.3.0/24"
        ready = next(c for c in fake.status_patches[-1]["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
        assert ready["message"].startswith("container runtime is down")

        await manager.renew_lease()
        await manager.renew_lease()
        assert len(fake.lease_writes) == 2 and fake.lease["metadata"]["resourceVersion"] == "2"
        assert fake.lease["spec"]["holderIdentity"] == "n1"
        assert fake.lease["metadata"]["ownerReferences"][0]["uid"] == "node-uid"

        patches = len(fake.status_patches)
        await manager.report_status()      # nothing changed and not due: no write
        assert len(fake.status_patches) == patches


async def test_status_changed_on_the_server_is_repaired_at_the_next_check(api, tmp_path) -> None:
    """The node lifecycle controller set Ready=Unknown while the agent could not post: the next check
    (not the next 60 s report) writes the agent's view again, as kubelet compares with the server's copy."""
    fake, client = api
    async with CRIClient(f"unix://{tmp_path}/no-such.sock", timeout=2) as runtime:
        manager = NodeManager(client, runtime, FACTS)
        await manager.register()
        patches = len(fake.status_patches)
        for condition in fake.node["status"]["conditions"]:
            condition.update(status="Unknown", reason="NodeStatusUnknown",
                             message="Kubelet stopped posting node status.", lastTransitionTime="2026-01-01T00:00:00Z")

        await manager.report_status()
        assert len(fake.status_patches) == patches + 1
        ready = next(c for c in fake.node["status"]["conditions"] if c["type"] == "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "KubeletNotReady")
        assert ready["lastTransitionTime"] != "2026-01-01T00:00:00Z"     # Unknown -> False is a transition

        await manager.report_status()      # repaired: the server's copy matches again, no write
        assert len(fake.status_patches) == patches + 1


def test_status_differs_ignores_heartbeats_and_fields_others_own() -> None:
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "lastHeartbeatTime": "t1",
             "lastTransitionTime": "t0"}
    wanted = {"capacity": {"cpu": "2"}, "conditions": [ready]}
    server = {"capacity": {"cpu": "2"}, "images": [{"names": ["x"]}],
              "conditions": [{"type": "NetworkUnavailable", "status": "False"}, {**ready, "lastHeartbeatTime": "t0"}]}
    assert not status_differs(server, wanted)
    assert status_differs({**server, "capacity": {"cpu": "1"}}, wanted)
    assert status_differs({**server, "conditions": [{**ready, "status": "Unknown"}]}, wanted)
    assert status_differs({"capacity": {"cpu": "2"}}, wanted)           # condition missing on the server
