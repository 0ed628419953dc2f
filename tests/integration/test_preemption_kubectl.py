"""Scheduler preemption through a real `shipmate server` and kubectl v1.35: a pending pod of higher priority evicts
the fewest, least important pods of one node (DisruptionTarget `PreemptionByScheduler`, graceful delete, a
`Preempted` event), is nominated to that node and bound there once they are gone. Nodes are API objects; the
test plays the kubelet (pods marked Running, graceful deletions confirmed)."""
import json
import shutil

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.integration.test_scheduling_kubectl import get_pod, make_node, node_of, pod, scheduled_condition
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


@pytest.fixture
def server(tmp_path):
    srv = Server(tmp_path)
    srv.extra_args = ["--node-monitor-grace-period", "1h"]
    srv.start()
    yield srv
    srv.stop()


def classes(server):
    for name, value, policy in (("low", 100, "PreemptLowerPriority"), ("high", 1000, "PreemptLowerPriority"),
                                ("polite", 1000, "Never")):
        server.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name},
            "value": value, "preemptionPolicy": policy}))


def sized(name, cpu, priority_class, **spec):
    body = pod(name, priorityClassName=priority_class, **spec)
    body["spec"]["containers"][0]["resources"] = {"requests": {"cpu": cpu}}
    return body


def run(server, body):
    server.kubectl("apply", "-f", "-", input=json.dumps(body))


def running(server, name, started):
    """The kubelet's part: the pod runs, started at `started`."""
    status, body = server.request("PATCH", f"/api/v1/namespaces/default/pods/{name}/status",
                                  {"status": {"phase": "Running", "startTime": started}},
                                  "application/merge-patch+json")
    assert status == 200, body


def confirm_deletion(server, name):
    """The kubelet's part: a pod marked for deletion is removed for good."""
    wait_for(lambda: get_pod(server, name).get("metadata", {}).get("deletionTimestamp"), what=f"{name} deleting")
    server.kubectl("delete", "pod", name, "--grace-period=0", "--force", check=False)


def test_higher_priority_pod_preempts_the_least_important_pod(server):
    classes(server)
    make_node(server, "node-a")
    run(server, sized("old", "1", "low"))
    run(server, sized("young", "1", "low"))
    for name, started in (("old", "2026-01-01T00:00:00Z"), ("young", "2026-01-02T00:00:00Z")):
        wait_for(lambda name=name: node_of(server, name), what=f"{name} bound")
        running(server, name, started)

    # Never preempts: it waits, saying why.
    run(server, sized("waiter", "1", "polite"))
    condition = wait_for(lambda: scheduled_condition(server, "waiter"), what="waiter unschedulable")
    assert condition["message"] == ("0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to "
                                    "preemptionPolicy=Never.")
    # Too big even on an empty node: preemption does not help, nothing is evicted.
    run(server, sized("giant", "3", "high"))
    condition = wait_for(lambda: scheduled_condition(server, "giant"), what="giant unschedulable")
    assert condition["message"] == ("0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are "
                                    "available: 1 Insufficient cpu.")
    server.kubectl("delete", "pod", "giant", "waiter")

    run(server, sized("urgent", "1", "high"))
    victim = wait_for(lambda: (lambda p: p if p["metadata"].get("deletionTimestamp") else None)(
        get_pod(server, "young")), what="young preempted")
    assert not get_pod(server, "old")["metadata"].get("deletionTimestamp")   # started earlier: reprieved
    target = next(c for c in victim["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert target["status"] == "True" and target["reason"] == "PreemptionByScheduler"
    assert target["message"] == "default-scheduler: preempting to accommodate a higher priority pod"
    urgent = wait_for(lambda: (lambda p: p if p.get("status", {}).get("nominatedNodeName") else None)(
        get_pod(server, "urgent")), what="urgent nominated")
    assert urgent["status"]["nominatedNodeName"] == "node-a" and not urgent["spec"].get("nodeName")
    wide = server.kubectl("get", "pod", "urgent", "-o", "wide").stdout.splitlines()[1].split()
    assert wide[:3] == ["urgent", "0/1", "Pending"] and "node-a" in wide
    described = wait_for(lambda: (lambda out: "Preempted" in out and out)(
        server.kubectl("describe", "pod", "young").stdout), what="Preempted event")
    assert f"Preempted by pod {urgent['metadata']['uid']} on node node-a" in described
    failed = wait_for(lambda: (lambda out: "FailedScheduling" in out and out)(
        server.kubectl("describe", "pod", "urgent").stdout), what="FailedScheduling event")
    assert "0/1 nodes are available: 1 Insufficient cpu." in failed

    confirm_deletion(server, "young")
    assert wait_for(lambda: node_of(server, "urgent"), what="urgent bound") == "node-a"
    assert server.request("GET", "/api/v1/namespaces/default/pods/young")[0] == 404


def test_the_node_with_the_cheapest_victims_is_chosen_and_budgets_are_respected(server):
    classes(server)
    make_node(server, "node-a")
    make_node(server, "node-b")
    # node-a: a low pod a PodDisruptionBudget protects; node-b: an unprotected low pod
    run(server, sized("guarded", "2", "low", nodeSelector={"kubernetes.io/hostname": "node-a"}))
    run(server, sized("plain", "2", "low", nodeSelector={"kubernetes.io/hostname": "node-b"}))
    for name in ("guarded", "plain"):
        wait_for(lambda name=name: node_of(server, name), what=f"{name} bound")
        running(server, name, "2026-01-01T00:00:00Z")
    server.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "keep"},
        "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "guarded"}}}}))
    wait_for(lambda: "observedGeneration" in server.request(
        "GET", "/apis/policy/v1/namespaces/default/poddisruptionbudgets/keep")[1].get("status", {}),
        what="budget status")
    run(server, sized("urgent", "2", "high"))
    wait_for(lambda: get_pod(server, "plain")["metadata"].get("deletionTimestamp"), what="plain preempted")
    assert not get_pod(server, "guarded")["metadata"].get("deletionTimestamp")
    confirm_deletion(server, "plain")
    assert wait_for(lambda: node_of(server, "urgent"), what="urgent bound") == "node-b"
