"""Issue 17 items 6 and 9 acceptance on the `make up` cluster with the real kubectl: `kubectl top pods` shows
non-zero CPU for a busy pod within 60 s; an HPA at 50 % CPU scales a Deployment from 1 to at least 2 under a CPU
burner and back to 1 after the load stops (scale-down window 20 s through `behavior`); a resize of a running
pod's CPU limit (`kubectl patch --subresource=resize`) is applied without restarting its containers."""
from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl, unique_name
from tests.support import wait_for

pytestmark = pytest.mark.e2e

# Busy while /cfg/mode says "burn" (a configMap volume: editing it stops every replica's load), then sleeps.
BURNER = 'while [ "$(cat /cfg/mode)" = burn ]; do :; done; exec sleep 3600'
CPU_LIMIT_SCRIPT = ("if [ -e /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; "
                    "else echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi")


@pytest.fixture
def ns(kubectl: Kubectl) -> Iterator[str]:
    name = unique_name("metrics")
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false", check=False)


def burner_spec() -> dict[str, Any]:
    return {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "burn", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", BURNER], "volumeMounts": [{"name": "cfg", "mountPath": "/cfg"}],
                            "resources": {"requests": {"cpu": "100m", "memory": "16Mi"},
                                          "limits": {"cpu": "300m", "memory": "64Mi"}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "load"}}]}


def load(kubectl: Kubectl, ns: str, mode: str) -> None:
    kubectl.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "load", "namespace": ns},
                   "data": {"mode": mode}})


def top_cpu_milli(kubectl: Kubectl, *args: str) -> dict[str, int]:
    result = kubectl.run("top", *args, "--no-headers", check=False)
    figures: dict[str, int] = {}
    for line in result.stdout.splitlines() if result.returncode == 0 else []:
        parts = line.split()
        if len(parts) >= 3 and parts[1].endswith("m"):
            figures[parts[0]] = int(parts[1][:-1])
        elif len(parts) >= 3 and parts[1].isdigit():
            figures[parts[0]] = int(parts[1]) * 1000
    return figures


def test_kubectl_top_shows_a_busy_pod_within_60s(kubectl: Kubectl, ns: str) -> None:
    load(kubectl, ns, "burn")
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hot", "namespace": ns},
                   "spec": burner_spec()})
    started = time.monotonic()
    wait_for(lambda: top_cpu_milli(kubectl, "pod", "-n", ns).get("hot", 0) > 0 or None, 60,
             "kubectl top pod to show CPU for the busy pod", interval=2)
    print(f"kubectl top showed CPU {time.monotonic() - started:.0f}s after the pod was created")
    assert sum(top_cpu_milli(kubectl, "node").values()) > 0


def test_hpa_scales_a_deployment_up_under_load_and_back(kubectl: Kubectl, ns: str) -> None:
    load(kubectl, ns, "burn")
    kubectl.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": ns},
                   "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                            "template": {"metadata": {"labels": {"app": "web"}}, "spec": burner_spec()}}})
    kubectl.apply({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                   "metadata": {"name": "web", "namespace": ns},
                   "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                            "minReplicas": 1, "maxReplicas": 3,
                            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                                "type": "Utilization", "averageUtilization": 50}}}],
                            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 20}}}})

    def replicas() -> int:
        return kubectl.json("get", "deployment", "web", "-n", ns)["spec"]["replicas"]
    wait_for(lambda: replicas() >= 2 or None, 180, "the HPA to scale web to ≥ 2", interval=3)
    events = kubectl.run("get", "events", "-n", ns, "--field-selector", "reason=SuccessfulRescale").stdout
    assert "New size:" in events
    load(kubectl, ns, "idle")
    wait_for(lambda: replicas() == 1 or None, 240, "the HPA to scale web back to 1", interval=3)
    status = kubectl.json("get", "hpa", "web", "-n", ns)["status"]
    assert {c["type"] for c in status["conditions"]} >= {"AbleToScale", "ScalingActive", "ScalingLimited"}


def test_resize_cpu_limit_without_restarts(kubectl: Kubectl, ns: str) -> None:
    def container(name: str) -> dict[str, Any]:
        return {"name": name, "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"],
                "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                              "limits": {"cpu": "200m", "memory": "64Mi"}}}
    kubectl.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "resizable", "namespace": ns},
                   "spec": {"terminationGracePeriodSeconds": 1, "containers": [container("app"), container("side")]}})

    def statuses() -> dict[str, dict[str, Any]]:
        pod = kubectl.json("get", "pod", "resizable", "-n", ns)
        return {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
    before = wait_for(lambda: (s := statuses()) and len(s) == 2 and all("running" in c["state"] for c in s.values())
                      and s or None, 90, "pod resizable running", interval=1)
    kubectl.run("patch", "pod", "resizable", "-n", ns, "--subresource", "resize", "-p",
                json.dumps({"spec": {"containers": [{"name": "app", "resources": {"limits": {"cpu": "400m"}}}]}}))
    after = wait_for(lambda: (s := statuses())["app"].get("resources", {}).get("limits", {}).get("cpu") == "400m"
                     and s or None, 60, "the resize applied", interval=1)
    assert kubectl.run("exec", "resizable", "-n", ns, "-c", "app", "--", "sh", "-c",
                       CPU_LIMIT_SCRIPT).stdout.split() == ["40000", "100000"]
    for name, status in after.items():
        assert status["restartCount"] == before[name]["restartCount"] == 0
        assert status["containerID"] == before[name]["containerID"]
