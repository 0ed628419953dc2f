"""Node authorizer + NodeRestriction against a real API (SQLite in a temporary dir): what a kubelet may
read and write, the pod index that follows pods through a watch, the mirror-pod/Node/Lease rules and a
node's updates of its own Node (no taints, no restricted labels)."""
from __future__ import annotations

import asyncio
import copy

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.auth import context, node_restriction
from apiserver.auth.attributes import request_attributes
from apiserver.auth.authorizer import Decision
from apiserver.auth.node_authorizer import NodeAuthorizer
from apiserver.auth.node_graph import BoundPod, NodeGraph, PodIndex, pod_references
from apiserver.auth.user import AUTHENTICATED, SYSTEM_NODES, UserInfo
from apiserver.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH
from apiserver.registry import DeleteOptions
from apiserver.storage.sqlite import SQLiteStorage

N1 = UserInfo("system:node:n1", (SYSTEM_NODES, AUTHENTICATED))
N2 = UserInfo("system:node:n2", (SYSTEM_NODES, AUTHENTICATED))
ALICE = UserInfo("alice", (AUTHENTICATED,))


def pod(name: str, node: str = "", **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **({"nodeName": node} if node else {}), **spec}}


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    yield api
    await storage.close()


@pytest.fixture
async def index(api):
    pods = PodIndex(api.pods)
    pods.start()
    assert await pods.wait_synced(5)
    yield pods
    await pods.stop()


async def eventually(check, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


def attrs(user, method, path, query=None):
    return request_attributes(user, method, path, query or {})


# references and the graph ------------------------------------------------------------------------
def test_pod_references_cover_volumes_env_and_pull_secrets():
    spec = {"imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "a", "secret": {"secretName": "vol-secret"}},
                        {"name": "b", "configMap": {"name": "vol-cm"}},
                        {"name": "c", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                                {"configMap": {"name": "proj-cm"}}]}}],
            "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-secret"}}]}],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "env-cm",
                                                                                                   "key": "k"}}},
                                                 {"name": "Y", "value": "plain"}],
                            "envFrom": [{"configMapRef": {"name": "from-cm"}}]}]}
    assert pod_references({"spec": spec}) == {
        ("secrets", "pull"), ("secrets", "vol-secret"), ("configmaps", "vol-cm"), ("secrets", "proj-secret"),
        ("configmaps", "proj-cm"), ("secrets", "init-secret"), ("configmaps", "env-cm"), ("configmaps", "from-cm")}


def test_graph_counts_references_per_node():
    graph = NodeGraph()
    a = BoundPod("ns", "a", "n1", frozenset({("secrets", "s")}))
    b = BoundPod("ns", "b", "n1", frozenset({("secrets", "s")}))
    graph.add(a)
    graph.add(b)
    graph.remove(a)
    assert graph.refers_to("n1", "ns", "secrets", "s") and not graph.refers_to("n2", "ns", "secrets", "s")
    graph.remove(b)
    assert not graph.refers_to("n1", "ns", "secrets", "s") and graph.references == {}


async def test_pod_index_follows_bindings_and_deletes(api, index):
    await api.pods.create("default", pod("web", volumes=[{"name": "v", "secret": {"secretName": "tls"}}]))
    await asyncio.sleep(0.1)
    assert not index.graph.refers_to("n1", "default", "secrets", "tls")  # not bound yet
    await api.bind("default", "web", {"metadata": {"name": "web"}, "target": {"kind": "Node", "name": "n1"}})
    await eventually(lambda: index.graph.refers_to("n1", "default", "secrets", "tls"))
    assert index.bound_node("default", "web") == "n1"
    await api.pods.delete("default", "web", DeleteOptions(grace_period_seconds=0))
    await eventually(lambda: not index.graph.refers_to("n1", "default", "secrets", "tls"))


# node authorizer ---------------------------------------------------------------------------------
async def decide(index, attributes):
    return (await NodeAuthorizer(index, grace=0.2).authorize(attributes)).decision


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v1/nodes"), ("GET", "/api/v1/nodes/n2"), ("GET", "/api/v1/pods"),
    ("GET", "/api/v1/services"), ("GET", "/api/v1/endpoints"), ("GET", "/apis/discovery.k8s.io/v1/endpointslices"),
    ("GET", "/api/v1/namespaces"), ("PATCH", "/api/v1/nodes/n1/status"), ("POST", "/api/v1/nodes"),
    ("PATCH", "/api/v1/namespaces/default/pods/web/status"), ("DELETE", "/api/v1/namespaces/default/pods/web"),
    ("POST", "/api/v1/namespaces/default/events"), ("PATCH", "/api/v1/namespaces/default/events/e1"),
    ("POST", "/apis/certificates.k8s.io/v1/certificatesigningrequests"),
    ("GET", "/apis/certificates.k8s.io/v1/certificatesigningrequests/csr-1"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1"),
    ("POST", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"),
])
async def test_node_may(index, method, path):
    assert await decide(index, attrs(N1, method, path)) is Decision.ALLOW


@pytest.mark.parametrize("method,path", [
    ("POST", "/api/v1/namespaces/default/services"), ("DELETE", "/api/v1/nodes/n1"),
    ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles"), ("PUT", "/api/v1/namespaces/default/pods/web"),
    ("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n2"),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/default/leases/n1"),
    ("GET", "/api/v1/namespaces/default/secrets"), ("GET", "/api/v1/secrets"),
    ("GET", "/api/v1/namespaces/default/secrets/unrelated"), ("PUT", "/api/v1/namespaces/default/configmaps/c"),
    ("GET", "/metrics"),
])
async def test_node_may_not(index, method, path):
    assert await decide(index, attrs(N1, method, path)) is Decision.NO_OPINION


async def test_others_get_no_opinion(index):
    assert await decide(index, attrs(ALICE, "GET", "/api/v1/pods")) is Decision.NO_OPINION
    odd = UserInfo("system:node:", (SYSTEM_NODES,))
    verdict = await NodeAuthorizer(index).authorize(attrs(odd, "GET", "/api/v1/pods"))
    assert verdict.decision is Decision.NO_OPINION and "unknown node" in verdict.reason


async def test_secrets_and_configmaps_only_of_pods_bound_to_the_node(api, index):
    await api.pods.create("default", pod("web", "n1", volumes=[{"name": "v", "secret": {"secretName": "tls"}}],
                                         containers=[{"name": "c", "image": "b", "envFrom": [
                                             {"configMapRef": {"name": "settings"}}]}]))
    await eventually(lambda: index.bound_node("default", "web") == "n1")
    for path in ("/api/v1/namespaces/default/secrets/tls", "/api/v1/namespaces/default/configmaps/settings"):
        assert await decide(index, attrs(N1, "GET", path)) is Decision.ALLOW
        assert await decide(index, attrs(N2, "GET", path)) is Decision.NO_OPINION
    watch_one = attrs(N1, "GET", "/api/v1/namespaces/default/secrets",
                      {"watch": "1", "fieldSelector": "metadata.name=tls"})
    assert await decide(index, watch_one) is Decision.ALLOW
    verdict = await NodeAuthorizer(index, grace=0.1).authorize(
        attrs(N2, "GET", "/api/v1/namespaces/default/secrets/tls"))
    assert verdict.reason == "no relationship found between node 'n2' and this object"


async def test_a_just_bound_pod_is_waited_for(api, index):
    """The kubelet may ask for a Secret before our watch delivered the pod: a short grace, not a 403."""
    authorizer = NodeAuthorizer(index, grace=2.0)
    decision = asyncio.create_task(authorizer.authorize(attrs(N1, "GET", "/api/v1/namespaces/default/secrets/late")))
    await asyncio.sleep(0.05)
    await api.pods.create("default", pod("late", "n1", volumes=[{"name": "v", "secret": {"secretName": "late"}}]))
    assert (await decision).decision is Decision.ALLOW


# NodeRestriction: what the URL names ----------------------------------------------------------------
async def test_pod_status_and_delete_only_of_own_pods(api, index):
    await api.pods.create("default", pod("mine", "n1"))
    await api.pods.create("default", pod("theirs", "n2"))
    await eventually(lambda: index.bound_node("default", "theirs") == "n2")
    await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/namespaces/default/pods/mine/status"), index, api)
    await node_restriction.admit_request(attrs(N1, "DELETE", "/api/v1/namespaces/default/pods/mine"), index, api)
    with pytest.raises(errors.APIError) as denied:
        await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/namespaces/default/pods/theirs/status"),
                                             index, api)
    assert denied.value.code == 403 and denied.value.message == (
        'pods "theirs" is forbidden: node "n1" can only update pod status for pods with spec.nodeName set to itself')
    with pytest.raises(errors.APIError) as denied:
        await node_restriction.admit_request(attrs(N1, "DELETE", "/api/v1/namespaces/default/pods/theirs"), index, api)
    assert denied.value.code == 403 and "can only delete pods with spec.nodeName set to itself" in denied.value.message
    with pytest.raises(errors.APIError) as missing:
        await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/namespaces/default/pods/none/status"),
                                             index, api)
    assert missing.value.code == 404
    with pytest.raises(errors.APIError) as update:
        await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/namespaces/default/pods/mine"), index, api)
    assert 'unexpected operation "UPDATE"' in update.value.message


async def test_storage_decides_when_the_index_lags(api):
    stale = PodIndex(api.pods)  # never started: knows no pod
    await api.pods.create("default", pod("mine", "n1"))
    await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/namespaces/default/pods/mine/status"), stale, api)


async def test_nodes_and_leases_only_their_own(api, index):
    await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/nodes/n1/status"), index, api)
    with pytest.raises(errors.APIError) as denied:
        await node_restriction.admit_request(attrs(N1, "PATCH", "/api/v1/nodes/n2/status"), index, api)
    assert denied.value.message == 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
    lease = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/"
    await node_restriction.admit_request(attrs(N1, "PUT", lease + "n1"), index, api)
    with pytest.raises(errors.APIError):
        await node_restriction.admit_request(attrs(N1, "PUT", lease + "n2"), index, api)
    # Reads and other users are not admission's business.
    await node_restriction.admit_request(attrs(N1, "GET", "/api/v1/nodes/n2"), index, api)
    await node_restriction.admit_request(attrs(ALICE, "PATCH", "/api/v1/nodes/n2/status"), index, api)


# NodeRestriction: what the body names ---------------------------------------------------------------
def mirror(node: str, uid: str, **extra) -> dict:
    body = pod("static-web-" + node, node, **extra)
    body["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "hash"}
    body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": node, "uid": uid,
                                            "controller": True}]
    return body


def test_mirror_pod_rules():
    ok = mirror("n1", "u1")
    assert node_restriction.mirror_pod_problem("n1", ok, "u1") is None
    plain = pod("p", "n1")
    assert "can only create mirror pods" in node_restriction.mirror_pod_problem("n1", plain, "u1")
    assert "spec.nodeName set to itself" in node_restriction.mirror_pod_problem("n2", ok, "u2")
    assert "UID mismatch" in node_restriction.mirror_pod_problem("n1", ok, "other")
    assert "reference secrets" in node_restriction.mirror_pod_problem(
        "n1", mirror("n1", "u1", volumes=[{"name": "v", "secret": {"secretName": "s"}}]), "u1")
    assert "service account" in node_restriction.mirror_pod_problem("n1", mirror("n1", "u1", serviceAccountName="x"),
                                                                     "u1")
    no_owner = mirror("n1", "u1")
    no_owner["metadata"]["ownerReferences"] = []
    assert "owner reference set to itself" in node_restriction.mirror_pod_problem("n1", no_owner, "u1")
    not_controller = mirror("n1", "u1")
    del not_controller["metadata"]["ownerReferences"][0]["controller"]
    assert "controller owner reference" in node_restriction.mirror_pod_problem("n1", not_controller, "u1")


def test_node_registration_rules():
    own = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux",
                                                 "node.kubernetes.io/instance-type": "vm", "team": "a"}}}
    assert node_restriction.node_create_problem("n1", own) is None
    assert node_restriction.node_create_problem("n1", {"metadata": {"name": "n2"}}) == \
        'node "n1" is not allowed to modify node "n2"'
    labelled = {"metadata": {"name": "n1", "labels": {"node-restriction.kubernetes.io/pci": "yes",
                                                      "node-role.kubernetes.io/control-plane": ""}}}
    assert node_restriction.node_create_problem("n1", labelled) == (
        'node "n1" is not allowed to set the following labels: node-restriction.kubernetes.io/pci, '
        'node-role.kubernetes.io/control-plane')


async def test_creates_by_a_node_go_through_admission(api):
    node = await api.nodes.create("", {"metadata": {"name": "n1"}})
    context.set_user(N1)
    try:
        created = await api.create(api.pods, "default", mirror("n1", node["metadata"]["uid"]))
        assert created["spec"]["nodeName"] == "n1"
        with pytest.raises(errors.APIError) as denied:
            await api.create(api.pods, "default", pod("sneaky", "n1"))
        assert denied.value.code == 403 and denied.value.message.startswith('pods "sneaky" is forbidden: pod does not')
        with pytest.raises(errors.APIError) as other:
            await api.create(api.nodes, "", {"metadata": {"name": "n2"}})
        assert other.value.message == 'nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2"'
        with pytest.raises(errors.APIError):
            await api.create(api.registry("coordination.k8s.io", "leases"), "kube-node-lease",
                             {"metadata": {"name": "n2"}, "spec": {}})
        await api.create(api.registry("coordination.k8s.io", "leases"), "kube-node-lease",
                         {"metadata": {"name": "n1"}, "spec": {"holderIdentity": "n1"}})
    finally:
        context.set_user(None)
    # The server's own loops (no user) are never restricted.
    await api.create(api.pods, "default", pod("controller-made"))


PRESSURE = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}


def test_node_update_rules():
    problem = node_restriction.node_update_problem
    old = {"metadata": {"name": "n1", "labels": {"kubernetes.io/hostname": "n1",
                                                 "node-role.kubernetes.io/worker": ""}},
           "spec": {"taints": [PRESSURE]}}
    same = {"metadata": {**old["metadata"], "annotations": {"a": "b"}}, "spec": {"taints": [dict(PRESSURE)]}}
    assert problem("n1", same, old) is None        # forbidden labels left as they are do not count
    taints_msg = 'node "n1" is not allowed to modify taints'
    assert problem("n1", {**same, "spec": {}}, old) == taints_msg                                    # removed
    assert problem("n1", {**same, "spec": {"taints": [PRESSURE, {"key": "x", "effect": "NoSchedule"}]}},
                   old) == taints_msg                                                              # added
    assert problem("n1", {**same, "spec": {"taints": [{**PRESSURE, "effect": "NoExecute"}]}}, old) == taints_msg
    assert problem("n1", {"metadata": {}, "spec": {"taints": []}}, {"metadata": {}, "spec": {}}) is None
    labels = lambda **extra: {**same, "metadata": {"name": "n1", "labels": extra}}  # noqa: E731
    assert problem("n1", labels(**{"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "",
                                   "team": "a", "topology.kubernetes.io/zone": "z"}), old) is None
    assert problem("n1", labels(**{"kubernetes.io/hostname": "n1"}), old) == \
        "is not allowed to modify labels: node-role.kubernetes.io/worker"                         # removed
    assert problem("n1", labels(**{"kubernetes.io/hostname": "n1", "node-role.kubernetes.io/worker": "yes",
                                   "node-restriction.kubernetes.io/pci": "1"}), old) == \
        "is not allowed to modify labels: node-restriction.kubernetes.io/pci, node-role.kubernetes.io/worker"
    owned = {**same, "metadata": {**same["metadata"], "ownerReferences": [{"kind": "X", "name": "y"}]}}
    assert problem("n1", owned, old) == 'node "n1" is not allowed to modify ownerReferences'
    configured = {**same, "spec": {**same["spec"], "configSource": {"configMap": {"name": "c"}}}}
    assert problem("n1", configured, old) == \
        'node "n1" is not allowed to update configSource to a new non-nil configSource'


async def test_node_updates_of_its_own_node_go_through_admission(api):
    await api.nodes.create("", {"metadata": {"name": "n1", "labels": {"node-role.kubernetes.io/worker": ""}},
                                "spec": {"taints": [PRESSURE]}})
    context.set_user(N1)
    try:
        for patch_type, patch in ((STRATEGIC_MERGE_PATCH, {"spec": {"taints": None}}),
                                  (MERGE_PATCH, {"spec": {"taints": [PRESSURE, {"key": "k", "effect": "NoSchedule"}]}}),
                                  (JSON_PATCH, [{"op": "remove", "path": "/spec/taints/0"}])):
            with pytest.raises(errors.APIError) as denied:
                await api.patch(api.nodes, "", "n1", patch_type, patch)
            assert (denied.value.code, denied.value.message) == (
                403, 'nodes "n1" is forbidden: node "n1" is not allowed to modify taints'), patch_type
        current = await api.nodes.get("", "n1")
        with pytest.raises(errors.APIError) as put:
            await api.update(api.nodes, "", "n1", {**current, "spec": {}})
        assert put.value.code == 403 and put.value.message.endswith("is not allowed to modify taints")
        with pytest.raises(errors.APIError) as relabel:
            await api.patch(api.nodes, "", "n1", MERGE_PATCH,
                            {"metadata": {"labels": {"node-role.kubernetes.io/worker": None}}})
        assert relabel.value.message == \
            'nodes "n1" is forbidden: is not allowed to modify labels: node-role.kubernetes.io/worker'
        # What a kubelet does write: its own labels, annotations, and conditions through status.
        labelled = await api.patch(api.nodes, "", "n1", MERGE_PATCH,
                                   {"metadata": {"labels": {"kubernetes.io/hostname": "n1"}, "annotations": {"a": "b"}}})
        assert labelled["metadata"]["labels"]["kubernetes.io/hostname"] == "n1"
        status = await api.patch(api.nodes, "", "n1", STRATEGIC_MERGE_PATCH,
                                 {"status": {"conditions": [{"type": "MemoryPressure", "status": "False"}]}}, "status")
        assert status["spec"]["taints"] == [PRESSURE]
        context.set_user(ALICE)   # RBAC decides for other users: NodeRestriction has no opinion
        await api.patch(api.nodes, "", "n1", MERGE_PATCH, {"metadata": {"labels": {"node-role.kubernetes.io/x": ""}}})
    finally:
        context.set_user(None)
    # The node lifecycle controller (no user) owns the taints.
    untainted = await api.patch(api.nodes, "", "n1", STRATEGIC_MERGE_PATCH, {"spec": {"taints": None}})
    assert not untainted["spec"].get("taints")


def test_node_may_not_choose_its_pod_cidr():
    own = {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.9.0/24"}}
    assert node_restriction.node_create_problem("n1", own) == \
        'node "n1" is not allowed to set podCIDR or podCIDRs: the server allocates them'
    assert node_restriction.node_create_problem("n1", {"metadata": {"name": "n1"}, "spec": {"podCIDRs": []}}) is None
    old = {"metadata": {"name": "n1"}, "spec": {}}
    for spec in ({"podCIDR": "10.244.9.0/24"}, {"podCIDRs": ["10.244.9.0/24"]}):
        assert node_restriction.node_update_problem("n1", {**old, "spec": spec}, old) == \
            'node "n1" is not allowed to modify podCIDR or podCIDRs'
    kept = {"metadata": {"name": "n1"}, "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]}}
    assert node_restriction.node_update_problem("n1", copy.deepcopy(kept), kept) is None
