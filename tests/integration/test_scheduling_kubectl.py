"""Scheduler, node lifecycle, ResourceQuota and drain through a real `shipmate server` and kubectl v1.35.

Nodes and their Leases are API objects written by the test (no agent): the test plays the kubelet.
"""
import copy
import datetime
import json
import threading
import time

import pytest

from tests.integration.test_apiserver_kubectl import NODE, Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration]

BUSYBOX = "127.0.0.1:5000/library/busybox:latest"


def now_micro() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_node(server, name, labels=None, taints=None, cpu="2"):
    node = copy.deepcopy(NODE)
    node["metadata"] = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    node["status"]["capacity"]["cpu"] = cpu
    if taints:
        node["spec"] = {"taints": taints}
    status, body = server.request("POST", "/api/v1/nodes", node)
    assert status == 201, body
    renew_lease(server, name)
    return body


def renew_lease(server, name):
    path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": name, "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now_micro()}}
    status, body = server.request("PUT", path, lease)
    assert status in (200, 201), body


def pod(name, **spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}], **spec}}


def get_pod(server, name):
    return server.request("GET", f"/api/v1/namespaces/default/pods/{name}")[1]


def node_of(server, name):
    return get_pod(server, name).get("spec", {}).get("nodeName")


def scheduled_condition(server, name):
    return next((c for c in get_pod(server, name).get("status", {}).get("conditions", [])
                 if c["type"] == "PodScheduled"), None)


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.extra_args = ["--node-monitor-grace-period", "1h"]
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def fast_lifecycle_server(tmp_path):
    srv = Server(tmp_path)
    srv.extra_args = ["--node-monitor-period", "0.2s", "--node-monitor-grace-period", "2s",
                      "--pod-eviction-timeout", "3s"]
    srv.start()
    yield srv
    srv.stop()


def test_quota_stops_the_third_pod_with_403(server):
    assert "resourcequota/q created" in server.kubectl("create", "quota", "q", "--hard=pods=2").stdout
    for name in ("p1", "p2"):
        server.kubectl("run", name, f"--image={BUSYBOX}")
    third = server.kubectl("run", "p3", f"--image={BUSYBOX}", check=False)
    assert third.returncode != 0
    assert ('Error from server (Forbidden): pods "p3" is forbidden: exceeded quota: q, requested: pods=1, '
            'used: pods=2, limited: pods=2') in third.stderr
    table = server.kubectl("get", "quota").stdout.splitlines()
    assert table[0].split() == ["NAME", "AGE", "REQUEST", "LIMIT"]
    wait_for(lambda: "pods: 2/2" in server.kubectl("get", "quota", "q").stdout, what="quota status used")
    described = server.kubectl("describe", "quota", "q").stdout
    assert [line.split() for line in described.splitlines() if line.startswith("pods")] == [["pods", "2", "2"]]
    # Deleting a pod releases its slot (the controller recounts), then the third pod fits.
    server.kubectl("delete", "pod", "p1")
    wait_for(lambda: "pods: 1/2" in server.kubectl("get", "quota", "q").stdout, what="usage released")
    server.kubectl("run", "p3", f"--image={BUSYBOX}")


def test_quota_compute_resources_must_be_specified_and_fit(server):
    server.kubectl("create", "quota", "compute", "--hard=requests.cpu=1,limits.memory=1Gi")
    result = server.kubectl("run", "bare", f"--image={BUSYBOX}", check=False)
    assert 'pods "bare" is forbidden: failed quota: compute: must specify limits.memory' in result.stderr
    assert "requests.cpu" in result.stderr
    big = pod("big")
    big["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}, "limits": {"memory": "64Mi"}}
    status, body = server.request("POST", "/api/v1/namespaces/default/pods", big)
    assert status == 403 and body["reason"] == "Forbidden"
    assert body["message"] == ('pods "big" is forbidden: exceeded quota: compute, requested: requests.cpu=2, '
                               'used: requests.cpu=0, limited: requests.cpu=1')
    small = pod("small")
    small["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "500m"}, "limits": {"memory": "512Mi"}}
    assert server.request("POST", "/api/v1/namespaces/default/pods", small)[0] == 201
    row = wait_for(lambda: (lambda out: "requests.cpu: 500m/1" in out and out)(
        server.kubectl("get", "quota", "compute").stdout), what="compute usage")
    assert "limits.memory: 512Mi/1Gi" in row


def test_concurrent_creates_never_share_the_last_slot(server):
    server.kubectl("create", "quota", "q", "--hard=pods=1")
    results = []

    def create(name):
        results.append(server.request("POST", "/api/v1/namespaces/default/pods", pod(name))[0])
    threads = [threading.Thread(target=create, args=(f"race{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [201, 403, 403, 403, 403, 403]


def test_placement_follows_selectors_affinity_and_taints(server):
    make_node(server, "node-a", labels={"disk": "ssd"})
    make_node(server, "node-b", taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    make_node(server, "node-c")
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("ssd", nodeSelector={"disk": "ssd"})))
    assert wait_for(lambda: node_of(server, "ssd"), what="ssd bound") == "node-a"
    only_b = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-b"]}]}]}}}
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("blocked", affinity=only_b)))
    condition = wait_for(lambda: scheduled_condition(server, "blocked"), what="PodScheduled condition")
    assert condition["status"] == "False" and condition["reason"] == "Unschedulable"
    assert condition["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, 2 node(s) didn't match Pod's "
        "node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.")
    events = wait_for(lambda: (lambda out: "FailedScheduling" in out and out)(
        server.kubectl("describe", "pod", "blocked").stdout), what="FailedScheduling event")
    assert "default-scheduler" in events
    tolerant = pod("tolerant", affinity=only_b, tolerations=[{"key": "dedicated", "operator": "Equal", "value": "x",
                                                             "effect": "NoSchedule"}])
    server.kubectl("apply", "-f", "-", input=json.dumps(tolerant))
    assert wait_for(lambda: node_of(server, "tolerant"), what="tolerant bound") == "node-b"
    not_ssd = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "disk", "operator": "DoesNotExist"}]}]}}}
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("plain", affinity=not_ssd)))
    assert wait_for(lambda: node_of(server, "plain"), what="plain bound") == "node-c"
    hungry = pod("hungry")
    hungry["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "3"}}
    server.kubectl("apply", "-f", "-", input=json.dumps(hungry))
    condition = wait_for(lambda: scheduled_condition(server, "hungry"), what="hungry unschedulable")
    assert condition["message"] == (
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: x}, 2 Insufficient cpu. preemption: "
        "0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for "
        "incoming pod.")
    # A node change wakes the unschedulable pods: a bigger node takes the hungry one.
    make_node(server, "node-d", cpu="4")
    assert wait_for(lambda: node_of(server, "hungry"), what="hungry bound after node-d") == "node-d"
    described = server.kubectl("describe", "pod", "hungry").stdout
    assert "Successfully assigned default/hungry to node-d" in described


def test_cordon_uncordon_and_drain(server):
    make_node(server, "node-a")
    make_node(server, "node-b")
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("web", nodeSelector={"kubernetes.io/hostname": "node-a"})))
    wait_for(lambda: node_of(server, "web") == "node-a", what="web on node-a")
    assert "node/node-a cordoned" in server.kubectl("cordon", "node-a").stdout
    assert "SchedulingDisabled" in server.kubectl("get", "node", "node-a").stdout
    taints = wait_for(lambda: server.request("GET", "/api/v1/nodes/node-a")[1]["spec"].get("taints"),
                      what="unschedulable taint")
    assert {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"} in taints
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("next")))
    assert wait_for(lambda: node_of(server, "next"), what="next bound") == "node-b"
    assert "node/node-a uncordoned" in server.kubectl("uncordon", "node-a").stdout
    wait_for(lambda: not server.request("GET", "/api/v1/nodes/node-a")[1]["spec"].get("taints"),
             what="unschedulable taint removed")
    drained = server.kubectl("drain", "node-a", "--force", "--grace-period=0", "--timeout=30s", timeout=60)
    assert "node/node-a cordoned" in drained.stdout
    assert "evicting pod default/web" in drained.stderr + drained.stdout
    assert "node/node-a drained" in drained.stdout
    assert server.request("GET", "/api/v1/namespaces/default/pods/web")[0] == 404
    # Eviction of a missing pod is a 404, as upstream.
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "gone"}}
    assert server.request("POST", "/api/v1/namespaces/default/pods/gone/eviction", eviction)[0] == 404


def test_memory_pressure_condition_taints_the_node_and_the_scheduler_avoids_it(server):
    """TaintNodesByCondition: the kubelet reports MemoryPressure=True only; the node lifecycle controller adds
    the NoSchedule taint (no timeAdded), new pods go elsewhere, and the taint goes with the condition."""
    make_node(server, "node-a")
    make_node(server, "node-b")

    def set_memory_pressure(status):
        patch = {"status": {"conditions": [{"type": "MemoryPressure", "status": status, "reason": "test"}]}}
        code, body = server.request("PATCH", "/api/v1/nodes/node-a/status", patch,
                                    "application/strategic-merge-patch+json")
        assert code == 200, body

    def taints():
        return server.request("GET", "/api/v1/nodes/node-a")[1]["spec"].get("taints") or []
    set_memory_pressure("True")
    assert wait_for(taints, what="memory-pressure taint") == [
        {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
    for i in range(4):
        server.kubectl("apply", "-f", "-", input=json.dumps(pod(f"spread{i}")))
    assert {wait_for(lambda: node_of(server, f"spread{i}"), what=f"spread{i} bound") for i in range(4)} == {"node-b"}
    server.kubectl("apply", "-f", "-", input=json.dumps(pod("pinned", nodeSelector={"kubernetes.io/hostname": "node-a"})))
    condition = wait_for(lambda: scheduled_condition(server, "pinned"), what="pinned unschedulable")
    assert condition["status"] == "False"
    assert "1 node(s) had untolerated taint {node.kubernetes.io/memory-pressure: }" in condition["message"]
    tolerant = pod("tolerant", nodeSelector={"kubernetes.io/hostname": "node-a"},
                   tolerations=[{"key": "node.kubernetes.io/memory-pressure", "operator": "Exists",
                                 "effect": "NoSchedule"}])
    server.kubectl("apply", "-f", "-", input=json.dumps(tolerant))
    assert wait_for(lambda: node_of(server, "tolerant"), what="tolerant bound") == "node-a"
    # The condition clears: the taint goes and the waiting pod lands on node-a.
    set_memory_pressure("False")
    wait_for(lambda: not taints(), what="memory-pressure taint removed")
    assert wait_for(lambda: node_of(server, "pinned"), what="pinned bound") == "node-a"


def test_node_without_lease_goes_unknown_tainted_and_its_pods_are_evicted(fast_lifecycle_server):
    server = fast_lifecycle_server
    make_node(server, "node-a")
    make_node(server, "node-b")
    stop = threading.Event()
    healthy = {"node-a", "node-b"}

    def kubelet():
        while not stop.is_set():
            for name in list(healthy):
                renew_lease(server, name)
            time.sleep(0.3)
    thread = threading.Thread(target=kubelet, daemon=True)
    thread.start()
    try:
        server.kubectl("apply", "-f", "-", input=json.dumps(pod("victim", nodeSelector={"kubernetes.io/hostname": "node-a"})))
        wait_for(lambda: node_of(server, "victim") == "node-a", what="victim on node-a")
        victim = get_pod(server, "victim")
        tolerations = {t["key"]: t.get("tolerationSeconds") for t in victim["spec"]["tolerations"]}
        assert tolerations["node.kubernetes.io/unreachable"] == 3 and tolerations["node.kubernetes.io/not-ready"] == 3
        ready = {"type": "Ready", "status": "True", "lastProbeTime": None, "lastTransitionTime": now_micro()[:19] + "Z"}
        status, _ = server.request("PATCH", "/api/v1/namespaces/default/pods/victim/status",
                                   {"status": {"phase": "Running", "conditions": [ready]}},
                                   content_type="application/merge-patch+json")
        assert status == 200
        time.sleep(3)   # longer than the grace period: leases kept node-a healthy
        assert "NotReady" not in server.kubectl("get", "node", "node-a").stdout
        lost_at = time.monotonic()
        healthy.discard("node-a")
        node = wait_for(lambda: (lambda n: any(c["type"] == "Ready" and c["status"] == "Unknown"
                                               for c in n["status"]["conditions"]) and n)(
            server.request("GET", "/api/v1/nodes/node-a")[1]), timeout=10, what="node-a Unknown")
        assert time.monotonic() - lost_at >= 1.5
        ready_condition = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        assert ready_condition["reason"] == "NodeStatusUnknown"
        assert ready_condition["message"] == "Kubelet stopped posting node status."
        taints = wait_for(lambda: server.request("GET", "/api/v1/nodes/node-a")[1]["spec"].get("taints"),
                          what="unreachable taints")
        assert {(t["key"], t["effect"]) for t in taints} == {("node.kubernetes.io/unreachable", "NoSchedule"),
                                                             ("node.kubernetes.io/unreachable", "NoExecute")}
        assert next(t for t in taints if t["effect"] == "NoExecute").get("timeAdded")
        assert "NotReady" in server.kubectl("get", "node", "node-a").stdout
        assert any(c["type"] == "Ready" and c["status"] == "False"
                   for c in get_pod(server, "victim")["status"]["conditions"])
        assert node_of(server, "victim") == "node-a"
        evicted = wait_for(lambda: get_pod(server, "victim")["metadata"].get("deletionTimestamp"), timeout=10,
                           what="victim evicted")
        # ≥ 1.5 s to Unknown, then the 3 s toleration counted from the taint's timeAdded, which (metav1.Time, as
        # upstream's) is whole seconds: the eviction may come up to 1 s before 1.5 + 3 after lost_at.
        assert evicted and time.monotonic() - lost_at >= 3.5
        assert "TaintManagerEviction" in server.kubectl("get", "events", "--field-selector",
                                                        "involvedObject.name=victim").stdout
        # New pods avoid the unreachable node.
        server.kubectl("apply", "-f", "-", input=json.dumps(pod("fresh")))
        assert wait_for(lambda: node_of(server, "fresh"), what="fresh bound") == "node-b"
        # The kubelet comes back: lease renewed and Ready posted → the taints go.
        healthy.add("node-a")
        heartbeat = now_micro()[:19] + "Z"
        conditions = [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready",
                       "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat}]
        status, _ = server.request("PATCH", "/api/v1/nodes/node-a/status", {"status": {"conditions": conditions}},
                                   content_type="application/strategic-merge-patch+json")
        assert status == 200
        wait_for(lambda: not server.request("GET", "/api/v1/nodes/node-a")[1]["spec"].get("taints"), timeout=10,
                 what="taints removed")
    finally:
        stop.set()
        thread.join()


def test_replicaset_pods_move_off_a_lost_node(fast_lifecycle_server):
    server = fast_lifecycle_server
    make_node(server, "node-a")
    make_node(server, "node-b")
    healthy = {"node-a", "node-b"}
    stop = threading.Event()

    def kubelet():
        while not stop.is_set():
            for name in list(healthy):
                renew_lease(server, name)
            time.sleep(0.3)
    thread = threading.Thread(target=kubelet, daemon=True)
    thread.start()
    try:
        server.kubectl("cordon", "node-b")
        replicaset = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "web"},
                      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                               "template": {"metadata": {"labels": {"app": "web"}},
                                            "spec": {"containers": [{"name": "c", "image": BUSYBOX}]}}}}
        server.kubectl("apply", "-f", "-", input=json.dumps(replicaset))

        def placements():
            pods = server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=app%3Dweb")[1]["items"]
            return sorted((p["spec"].get("nodeName") or "", bool(p["metadata"].get("deletionTimestamp")))
                          for p in pods)
        wait_for(lambda: placements() == [("node-a", False), ("node-a", False)], what="both pods on node-a")
        server.kubectl("uncordon", "node-b")
        healthy.discard("node-a")
        # after grace (2 s) + eviction timeout (3 s): the old pods terminate, replacements run on node-b
        wait_for(lambda: [p for p in placements() if not p[1]] == [("node-b", False), ("node-b", False)],
                 timeout=20, what="replacements on node-b")
        assert sum(1 for p in placements() if p == ("node-a", True)) == 2
    finally:
        stop.set()
        thread.join()
