"""Resource metrics and autoscaling through a real node (tests/integration/private_node.py): the agent's
/stats/summary and /metrics/resource from cgroups, `kubectl top pods|nodes` from the server's metrics.k8s.io
(scraped every 5 s here) with non-zero CPU for a busy pod within 60 s, metrics RBAC (a namespace viewer reads its
own namespace's pod metrics only), and a HorizontalPodAutoscaler at 50 % CPU scaling a Deployment of CPU burners
from 1 to at least 2 and back to 1 once the load stops (scale-down window 15 s through `behavior`)."""
from __future__ import annotations

import json
import subprocess
import time
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NODE_NAME = "metricsnode"
SERVER_ARGS = ("--metric-resolution", "5s", "--horizontal-pod-autoscaler-sync-period", "5s")
# Busy while /cfg/mode says "burn" (a configMap volume: editing it stops every replica's load), then sleeps.
BURNER = 'while [ "$(cat /cfg/mode)" = burn ]; do :; done; exec sleep 3600'


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateNode]:
    with running_node(name=NODE_NAME, server_args=SERVER_ARGS) as private:
        yield private


def apply(node: PrivateNode, manifest: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", stdin=json.dumps(manifest))


def burner_pod_spec(cpu_request: str = "100m", cpu_limit: str = "300m") -> dict[str, Any]:
    return {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "burn", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", BURNER], "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                            "resources": {"requests": {"cpu": cpu_request, "memory": "16Mi"},
                                          "limits": {"cpu": cpu_limit, "memory": "64Mi"}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "load"}}]}


def load(node: PrivateNode, namespace: str, mode: str) -> None:
    apply(node, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "load", "namespace": namespace},
                 "data": {"mode": mode}})


def top_cpu_milli(node: PrivateNode, *args: str) -> dict[str, int]:
    """`kubectl top ...` → {name: CPU in millicores} (empty while metrics are not available yet)."""
    result = node.kubectl("top", *args, "--no-headers", check=False)
    if result.returncode != 0:
        return {}
    figures = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1].endswith("m"):
            figures[parts[0]] = int(parts[1][:-1])
        elif len(parts) >= 3 and parts[1].isdigit():
            figures[parts[0]] = int(parts[1]) * 1000
    return figures


def test_stats_endpoints_and_kubectl_top(node: PrivateNode) -> None:
    node.kubectl("create", "namespace", "busy")
    load(node, "busy", "burn")
    apply(node, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hot", "namespace": "busy"},
                 "spec": burner_pod_spec()})
    started = time.monotonic()
    busy = wait_for(lambda: (top_cpu_milli(node, "pod", "-n", "busy").get("hot") or 0) > 0 or None, 90,
                    "kubectl top pod shows CPU for the busy pod", interval=2)
    assert busy
    # acceptance: within 60 s of the pod being created (image pulled from the node's registry included)
    assert time.monotonic() - started < 60, f"took {time.monotonic() - started:.0f}s"
    assert wait_for(lambda: top_cpu_milli(node, "pod", "-n", "busy").get("hot", 0) >= 20 or None, 30,
                    "the burner at ≥ 20m", interval=2)
    nodes = top_cpu_milli(node, "node")
    assert nodes.get(NODE_NAME, 0) > 0, nodes

    metrics = json.loads(node.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/busy/pods/hot").stdout)
    assert metrics["kind"] == "PodMetrics" and metrics["containers"][0]["name"] == "burn"
    assert metrics["window"].endswith("s") and metrics["containers"][0]["usage"]["memory"].endswith(("Ki", "Mi"))
    node_metrics = json.loads(node.kubectl("get", "--raw", f"/apis/metrics.k8s.io/v1beta1/nodes/{NODE_NAME}").stdout)
    assert node_metrics["kind"] == "NodeMetrics" and node_metrics["usage"]["cpu"].endswith(("n", "m")) or \
        node_metrics["usage"]["cpu"].isdigit()

    # the node server's own endpoints, read with the admin's client certificate (system:masters)
    pki = node.work_dir / "server" / "pki"
    def node_server(path: str) -> str:
        result = subprocess.run([*node.enter, "curl", "-sfk", "--cert", str(pki / "admin.crt"), "--key",
                                 str(pki / "admin.key"), f"https://127.0.0.1:10250{path}"], capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        return result.stdout
    summary = json.loads(node_server("/stats/summary"))
    assert summary["node"]["nodeName"] == NODE_NAME and summary["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    pod = next(p for p in summary["pods"] if p["podRef"]["name"] == "hot")
    assert pod["podRef"]["namespace"] == "busy" and pod["containers"][0]["name"] == "burn"
    assert pod["cpu"]["usageCoreNanoSeconds"] > 0 and pod["memory"]["workingSetBytes"] > 0
    resource = node_server("/metrics/resource")
    assert 'container_cpu_usage_seconds_total{container="burn",namespace="busy",pod="hot"}' in resource
    assert "node_memory_working_set_bytes" in resource

    # RBAC: a viewer of namespace busy reads busy's pod metrics, not another namespace's nor the nodes'
    node.kubectl("create", "namespace", "other")
    node.kubectl("create", "rolebinding", "alice-view", "--clusterrole=view", "--user=alice", "-n", "busy")
    allowed = node.kubectl("top", "pod", "-n", "busy", "--as", "alice", check=False)
    assert allowed.returncode == 0 and "hot" in allowed.stdout, allowed.stderr
    denied = node.kubectl("top", "pod", "-n", "other", "--as", "alice", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower(), denied.stderr
    assert "yes" in node.kubectl("auth", "can-i", "get", "pods.metrics.k8s.io", "-n", "busy", "--as", "alice",
                                 check=False).stdout
    assert "no" in node.kubectl("auth", "can-i", "list", "nodes.metrics.k8s.io", "--as", "alice",
                                check=False).stdout
    node.kubectl("delete", "namespace", "busy", "--wait=false")


def hpa_status(node: PrivateNode, namespace: str) -> dict[str, Any]:
    return node.json("get", "hpa", "web", "-n", namespace).get("status") or {}


def test_hpa_scales_up_under_load_and_back_down(node: PrivateNode) -> None:
    namespace = "scaling"
    node.kubectl("create", "namespace", namespace)
    load(node, namespace, "burn")
    apply(node, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
                 "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                          "template": {"metadata": {"labels": {"app": "web"}}, "spec": burner_pod_spec()}}})
    apply(node, {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                 "metadata": {"name": "web", "namespace": namespace},
                 "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                          "minReplicas": 1, "maxReplicas": 3,
                          "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                              "type": "Utilization", "averageUtilization": 50}}}],
                          "behavior": {"scaleDown": {"stabilizationWindowSeconds": 15}}}})

    def scaled_up() -> int | None:
        replicas = node.json("get", "deployment", "web", "-n", namespace)["spec"]["replicas"]
        return replicas if replicas >= 2 else None
    replicas = wait_for(scaled_up, 150, "the HPA to scale the Deployment to ≥ 2", interval=3)
    assert replicas >= 2
    status = hpa_status(node, namespace)
    conditions = {c["type"]: c for c in status.get("conditions") or []}
    assert conditions["AbleToScale"]["status"] == "True"
    assert conditions["ScalingActive"]["status"] == "True" and conditions["ScalingActive"]["reason"] == "ValidMetricFound"
    assert status["currentMetrics"][0]["resource"]["name"] == "cpu"
    assert status["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    events = node.kubectl("get", "events", "-n", namespace, "--field-selector", "reason=SuccessfulRescale").stdout
    assert "New size:" in events and "cpu resource utilization (percentage of request) above target" in events
    described = node.kubectl("describe", "hpa", "web", "-n", namespace).stdout
    assert "SuccessfulRescale" in described and "ScalingActive" in described

    load(node, namespace, "idle")     # every replica stops burning within the configMap refresh (≈10 s)

    def scaled_down() -> bool | None:
        return node.json("get", "deployment", "web", "-n", namespace)["spec"]["replicas"] == 1 or None
    wait_for(scaled_down, 150, "the HPA to scale back to 1 after the stabilization window", interval=3)
    events = node.kubectl("get", "events", "-n", namespace, "--field-selector", "reason=SuccessfulRescale").stdout
    assert "All metrics below target" in events
    node.kubectl("delete", "namespace", namespace, "--wait=false")


CPU_LIMIT_SCRIPT = ("if [ -e /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; "
                    "else echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi")


def container_statuses(pod: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}


def test_resize_cpu_limit_in_place(node: PrivateNode) -> None:
    """A resize of a running pod's CPU limit reaches the container's cgroup (cpu.max / cfs quota) through CRI
    UpdateContainerResources without restarting any container; a memory change whose resizePolicy says
    RestartContainer restarts that container only; a resize beyond the node is Infeasible."""
    def container(name: str, policy: str) -> dict[str, Any]:
        return {"name": name, "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"],
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                 {"resourceName": "memory", "restartPolicy": policy}],
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                              "limits": {"cpu": "200m", "memory": "64Mi"}}}
    apply(node, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "resizable", "namespace": "default"},
                 "spec": {"terminationGracePeriodSeconds": 1,
                          "containers": [container("app", "NotRequired"), container("side", "RestartContainer")]}})

    def running() -> dict[str, Any] | None:
        pod = node.json("get", "pod", "resizable")
        statuses = container_statuses(pod)
        return pod if len(statuses) == 2 and all("running" in s["state"] for s in statuses.values()) else None
    before = wait_for(running, 90, "pod resizable running", interval=0.5)
    ids = {name: s["containerID"] for name, s in container_statuses(before).items()}
    assert container_statuses(before)["app"]["allocatedResources"] == {"cpu": "100m", "memory": "32Mi"}
    assert container_statuses(before)["app"]["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    assert node.kubectl("exec", "resizable", "-c", "app", "--", "sh", "-c", CPU_LIMIT_SCRIPT).stdout.split() == \
        ["20000", "100000"]

    node.kubectl("patch", "pod", "resizable", "--subresource", "resize", "-p",
                 json.dumps({"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "400m"}}}]}}))

    def resized() -> dict[str, Any] | None:
        pod = node.json("get", "pod", "resizable")
        app = container_statuses(pod)["app"]
        done = app.get("resources", {}).get("limits", {}).get("cpu") == "400m" and \
            pod["status"].get("observedGeneration") == pod["metadata"]["generation"] and \
            not any(c["type"].startswith("PodResize") for c in pod["status"].get("conditions") or [])
        return pod if done else None
    after = wait_for(resized, 60, "the new CPU limit applied", interval=0.5)
    assert after["metadata"]["generation"] == 2
    assert after["spec"]["containers"][0]["resources"]["limits"]["cpu"] == "400m"
    assert node.kubectl("exec", "resizable", "-c", "app", "--", "sh", "-c", CPU_LIMIT_SCRIPT).stdout.split() == \
        ["40000", "100000"]
    for name, status in container_statuses(after).items():
        assert status["restartCount"] == 0 and status["containerID"] == ids[name], status

    # memory of `side` with resizePolicy RestartContainer: only that container restarts
    node.kubectl("patch", "pod", "resizable", "--subresource", "resize", "-p",
                 json.dumps({"spec": {"containers": [{"name": "side", "resources": {"limits": {"memory": "96Mi"}}}]}}))

    def side_restarted() -> dict[str, Any] | None:
        pod = node.json("get", "pod", "resizable")
        side = container_statuses(pod)["side"]
        return pod if side["restartCount"] == 1 and "running" in side["state"] and \
            side.get("resources", {}).get("limits", {}).get("memory") == "96Mi" else None
    restarted = wait_for(side_restarted, 90, "side restarted with its new memory limit", interval=0.5)
    assert container_statuses(restarted)["app"]["restartCount"] == 0
    assert container_statuses(restarted)["app"]["containerID"] == ids["app"]

    # more CPU than the node has: Infeasible, nothing applied
    node.kubectl("patch", "pod", "resizable", "--subresource", "resize", "-p",
                 json.dumps({"spec": {"containers": [{"name": "app", "resources": {
                     "requests": {"cpu": "1000"}, "limits": {"cpu": "1000"}}}]}}))

    def infeasible() -> dict[str, Any] | None:
        pod = node.json("get", "pod", "resizable")
        pending = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodResizePending"]
        return pending[0] if pending else None
    condition = wait_for(infeasible, 60, "PodResizePending", interval=0.5)
    assert condition["reason"] == "Infeasible" and "cpu" in condition["message"]
    pod = node.json("get", "pod", "resizable")
    assert container_statuses(pod)["app"]["resources"]["limits"]["cpu"] == "400m"
    node.kubectl("delete", "pod", "resizable", "--wait=false")
