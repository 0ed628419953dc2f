"""A node may not choose its pod subnet: with its own client certificate (system:node:<name>, system:nodes)
it may not create its Node with a podCIDR nor set/change spec.podCIDR(s) afterwards (NodeRestriction →
403, Node unchanged); only the server's allocator, or an admin with a subnet inside the cluster CIDR that
overlaps no other node's (else 422), sets them. Every node routes a podCIDR to the node holding it, so a
chosen subnet would draw other nodes' pod traffic (or the Service range, or the node network) to it."""
from __future__ import annotations

import shutil

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.integration.test_auth_node import Identity, node

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


def _node_identity(server, tmp_path, name: str) -> Identity:
    return Identity(server, str(tmp_path / name), f"system:node:{name}", ("system:nodes",))


def test_node_may_not_create_its_node_with_a_pod_cidr(server, tmp_path):
    n1 = _node_identity(server, tmp_path, "n1")
    code, status = n1.request("POST", "/api/v1/nodes", {**node("n1"), "spec": {"podCIDR": "10.244.7.0/24"}},
                              content_type="application/json")
    assert code == 403, status
    assert status["reason"] == "Forbidden"
    assert status["message"] == ('nodes "n1" is forbidden: node "n1" is not allowed to set podCIDR or podCIDRs: '
                                 "the server allocates them")
    assert server.request("GET", "/api/v1/nodes/n1")[0] == 404
    # Without one, the server's allocator picks it.
    code, created = n1.request("POST", "/api/v1/nodes", node("n1"), content_type="application/json")
    assert code == 201 and created["spec"]["podCIDR"].startswith("10.244."), created


@pytest.mark.parametrize("patch", [{"spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]}},
                                   {"spec": {"podCIDRs": ["10.244.9.0/24", "fd00::/64"]}}])
def test_node_may_not_change_its_pod_cidr(server, tmp_path, patch):
    n1 = _node_identity(server, tmp_path, "n1")
    assert n1.request("POST", "/api/v1/nodes", node("n1"), content_type="application/json")[0] == 201
    before = server.request("GET", "/api/v1/nodes/n1")[1]
    code, status = n1.request("PATCH", "/api/v1/nodes/n1", patch, content_type="application/strategic-merge-patch+json")
    assert code == 403, status
    assert status["message"] == 'nodes "n1" is forbidden: node "n1" is not allowed to modify podCIDR or podCIDRs'
    assert server.request("GET", "/api/v1/nodes/n1")[1] == before


def test_node_may_not_set_a_pod_cidr_it_lacks(tmp_path):
    """A Node the allocator could not serve (the cluster CIDR holds one subnet) stays without a podCIDR:
    its node may not fill it in ("" → value is what upstream's validation alone would allow)."""
    server = Server(tmp_path)
    server.extra_args = ["--cluster-cidr", "10.244.0.0/24", "--node-cidr-mask-size", "24"]
    server.start()
    try:
        assert server.request("POST", "/api/v1/nodes", node("n1"))[1]["spec"]["podCIDR"] == "10.244.0.0/24"
        code, created = server.request("POST", "/api/v1/nodes", node("n2"))
        assert code == 201 and not created["spec"].get("podCIDR"), created
        n2 = _node_identity(server, tmp_path, "n2")
        for cidr in ("10.244.0.0/24", "10.244.0.128/25", "192.168.0.0/16"):
            hijack = {**created, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}
            code, status = n2.request("PUT", "/api/v1/nodes/n2", hijack, content_type="application/json")
            assert code == 403, status
            assert status["message"] == ('nodes "n2" is forbidden: node "n2" is not allowed to modify podCIDR or '
                                         "podCIDRs")
        assert server.request("GET", "/api/v1/nodes/n2")[1] == created
    finally:
        server.stop()


def test_admin_pod_cidr_must_be_inside_the_cluster_cidr_and_free(server):
    allocated = server.request("POST", "/api/v1/nodes", node("n1"))[1]["spec"]["podCIDR"]
    for name, cidr, why in (("x1", allocated, "overlaps the podCIDR"),
                            ("x2", "10.244.0.0/16", "overlaps the podCIDR"),
                            ("x3", "10.96.0.0/24", "must be within the cluster CIDR 10.244.0.0/16"),
                            ("x4", "0.0.0.0/0", "must be within the cluster CIDR 10.244.0.0/16")):
        code, status = server.request("POST", "/api/v1/nodes", {**node(name), "spec": {"podCIDR": cidr}})
        assert code == 422, status
        assert status["reason"] == "Invalid" and why in status["message"], status
        assert server.request("GET", f"/api/v1/nodes/{name}")[0] == 404
    code, status = server.request("POST", "/api/v1/nodes", {**node("x5"), "spec": {"podCIDR": "bogus"}})
    assert code == 422 and 'spec.podCIDRs[0]: Invalid value: "bogus": must be a valid CIDR value' in status["message"]
    # A free subnet inside the cluster CIDR is the admin's to give; the allocator then skips it.
    code, created = server.request("POST", "/api/v1/nodes", {**node("x6"), "spec": {"podCIDR": "10.244.200.0/24"}})
    assert code == 201 and created["spec"]["podCIDRs"] == ["10.244.200.0/24"], created
    code, status = server.request("POST", "/api/v1/nodes", {**node("x7"), "spec": {"podCIDR": "10.244.200.0/25"}})
    assert code == 422 and 'overlaps the podCIDR 10.244.200.0/24 of node "x6"' in status["message"], status
