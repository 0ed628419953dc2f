"""Issue 16 (persistent storage) acceptance with real kubectl against the running cluster (`make up`):

- a claim without a StorageClass gets the default `local-path` class, is bound to a volume provisioned on the
  pod's node (a directory under the agent's --local-path-dir); a second pod with the same claim reads what the
  first wrote; deleting the claim removes the volume and its directory (Delete), or keeps both, the volume
  Released (Retain);
- a 3-replica StatefulSet gets data-web-0..2 Bound; web-1 deleted comes back with the same data;
- a pod naming a missing claim stays Pending with upstream's message, and runs once the claim exists;
- deleting a claim a running pod uses leaves it Terminating (pvc-protection) until the pod is gone.

The multi-node points (provisioned where the pod landed, a bound local PV pins its pods) are in
multinode/test_storage_multinode.py.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from typing import Any

import pytest

from tests.e2e.cluster import TEST_IMAGE, Kubectl
from tests.support import wait_for

pytestmark = pytest.mark.e2e

LOADED = 120
KEEP_RUNNING = "trap 'exit 0' TERM; sleep 3600 & wait"
DIR_ANNOTATION = "storage.shipmate.io/local-path-dir"


def claim(name: str, size: str = "64Mi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def pod(name: str, claim_name: str, script: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"{script}; {KEEP_RUNNING}"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}}


def apply(kubectl: Kubectl, ns: str, *objects: dict[str, Any]) -> None:
    kubectl.run("apply", "-n", ns, "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                "items": list(objects)}))


def get(kubectl: Kubectl, ns: str | None, *args: str) -> Any:
    scope = ["-n", ns] if ns else []
    result = kubectl.run("get", *args, *scope, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def running(kubectl: Kubectl, ns: str, name: str) -> bool:
    found = get(kubectl, ns, "pod", name)
    statuses = (found or {}).get("status", {}).get("containerStatuses") or []
    return bool(statuses) and all("running" in s.get("state", {}) for s in statuses)


def host_path(kubectl: Kubectl, ns: str, claim_name: str) -> str:
    volume = get(kubectl, None, "pv", get(kubectl, ns, "pvc", claim_name)["spec"]["volumeName"])
    return volume["spec"]["hostPath"]["path"]


def test_default_class_provisions_on_the_pods_node_keeps_data_and_reclaims(kubectl: Kubectl, namespace: str) -> None:
    classes = kubectl.run("get", "storageclass").stdout
    assert "local-path (default)" in classes and "shipmate.io/local-path" in classes
    apply(kubectl, namespace, claim("data"), pod("writer", "data", "echo hello > /data/file"))
    wait_for(lambda: running(kubectl, namespace, "writer"), LOADED, "writer running", 0.5)
    pvc = get(kubectl, namespace, "pvc", "data")
    node = get(kubectl, namespace, "pod", "writer")["spec"]["nodeName"]
    assert pvc["status"]["phase"] == "Bound" and pvc["spec"]["storageClassName"] == "local-path"
    volume = get(kubectl, None, "pv", pvc["spec"]["volumeName"])
    assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [node]
    base = get(kubectl, None, "node", node)["metadata"]["annotations"][DIR_ANNOTATION]
    path = volume["spec"]["hostPath"]["path"]
    assert os.path.dirname(path) == base
    row = kubectl.run("get", "pvc", "data", "-n", namespace).stdout.splitlines()[1].split()
    assert row[:6] == ["data", "Bound", volume["metadata"]["name"], "64Mi", "RWO", "local-path"]
    wait_for(lambda: os.path.exists(os.path.join(path, "file")), 30, "the file on the node")

    kubectl.run("delete", "pod", "writer", "-n", namespace, "--timeout=60s")
    apply(kubectl, namespace, pod("reader", "data", "true"))
    wait_for(lambda: running(kubectl, namespace, "reader"), LOADED, "reader running", 0.5)
    assert kubectl.run("exec", "reader", "-n", namespace, "--", "cat", "/data/file").stdout == "hello\n"
    kubectl.run("delete", "pod", "reader", "-n", namespace, "--timeout=60s")
    kubectl.run("delete", "pvc", "data", "-n", namespace, "--timeout=60s")
    wait_for(lambda: get(kubectl, None, "pv", volume["metadata"]["name"]) is None, 60, "the volume deleted", 0.5)
    wait_for(lambda: not os.path.exists(path), 30, "the directory removed", 0.5)


def test_retain_keeps_the_directory_and_releases_the_volume(kubectl: Kubectl, namespace: str) -> None:
    class_name = f"keep-{namespace}"
    keep = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": class_name},
            "provisioner": "shipmate.io/local-path", "reclaimPolicy": "Retain",
            "volumeBindingMode": "WaitForFirstConsumer"}
    kubectl.apply(keep)
    try:
        apply(kubectl, namespace, claim("kept", storageClassName=class_name), pod("w", "kept", "echo x > /data/f"))
        wait_for(lambda: running(kubectl, namespace, "w"), LOADED, "pod running", 0.5)
        name = get(kubectl, namespace, "pvc", "kept")["spec"]["volumeName"]
        path = host_path(kubectl, namespace, "kept")
        kubectl.run("delete", "pod", "w", "-n", namespace, "--timeout=60s")
        kubectl.run("delete", "pvc", "kept", "-n", namespace, "--timeout=60s")
        wait_for(lambda: get(kubectl, None, "pv", name)["status"]["phase"] == "Released", 30, "Released", 0.5)
        row = kubectl.run("get", "pv", name).stdout.splitlines()[1].split()
        assert row[3:6] == ["Retain", "Released", f"{namespace}/kept"]
        assert open(os.path.join(path, "f")).read() == "x\n"
        kubectl.run("delete", "pv", name, "--timeout=60s")
        assert os.path.exists(os.path.join(path, "f"))             # the administrator's to remove
        shutil.rmtree(path)
    finally:
        kubectl.run("delete", "storageclass", class_name, check=False)


def test_statefulset_claims_bound_and_reattached_to_the_same_ordinal(kubectl: Kubectl, namespace: str) -> None:
    headless = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}}
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
           "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "terminationGracePeriodSeconds": 1, "containers": [{
                            "name": "app", "image": TEST_IMAGE, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", f"[ -f /data/id ] || hostname > /data/id; {KEEP_RUNNING}"],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "32Mi"}}}}]}}
    apply(kubectl, namespace, headless, sts)
    kubectl.run("rollout", "status", "sts/web", "-n", namespace, f"--timeout={LOADED * 2}s", timeout=LOADED * 2 + 30)
    claims = {c["metadata"]["name"]: c for c in get(kubectl, namespace, "pvc")["items"]}
    assert sorted(claims) == ["data-web-0", "data-web-1", "data-web-2"]
    assert all(c["status"]["phase"] == "Bound" for c in claims.values())
    before = claims["data-web-1"]["spec"]["volumeName"]
    assert kubectl.run("exec", "web-1", "-n", namespace, "--", "cat", "/data/id").stdout == "web-1\n"
    uid = get(kubectl, namespace, "pod", "web-1")["metadata"]["uid"]
    kubectl.run("delete", "pod", "web-1", "-n", namespace, "--timeout=60s")
    wait_for(lambda: (p := get(kubectl, namespace, "pod", "web-1")) is not None and p["metadata"]["uid"] != uid
             and running(kubectl, namespace, "web-1"), LOADED, "web-1 back", 0.5)
    assert get(kubectl, namespace, "pvc", "data-web-1")["spec"]["volumeName"] == before
    assert kubectl.run("exec", "web-1", "-n", namespace, "--", "cat", "/data/id").stdout == "web-1\n"
    kubectl.run("delete", "sts", "web", "-n", namespace, "--timeout=60s")
    kubectl.run("delete", "pvc", "--all", "-n", namespace, "--timeout=60s")


def test_missing_claim_pending_with_upstreams_message_then_runs(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, pod("waiting", "later", "true"))

    def scheduled_message() -> str:
        found = get(kubectl, namespace, "pod", "waiting") or {}
        return next((c.get("message", "") for c in found.get("status", {}).get("conditions") or []
                     if c["type"] == "PodScheduled" and c["status"] == "False"), "")
    message = wait_for(scheduled_message, 30, "PodScheduled False", 0.5)
    nodes = len(get(kubectl, None, "nodes")["items"])
    assert message == (f'0/{nodes} nodes are available: persistentvolumeclaim "later" not found. preemption: '
                       f"0/{nodes} nodes are available: {nodes} Preemption is not helpful for scheduling.")
    assert get(kubectl, namespace, "pod", "waiting")["status"]["phase"] == "Pending"
    events = kubectl.run("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=waiting").stdout
    assert "FailedScheduling" in events and 'persistentvolumeclaim "later" not found' in events
    apply(kubectl, namespace, claim("later"))
    wait_for(lambda: running(kubectl, namespace, "waiting"), LOADED, "the pod runs once its claim exists", 0.5)
    kubectl.run("delete", "pod", "waiting", "-n", namespace, "--timeout=60s")
    kubectl.run("delete", "pvc", "later", "-n", namespace, "--timeout=60s")


def test_claim_in_use_stays_terminating_until_its_pod_is_gone(kubectl: Kubectl, namespace: str) -> None:
    apply(kubectl, namespace, claim("busy"), pod("user", "busy", "true"))
    wait_for(lambda: running(kubectl, namespace, "user"), LOADED, "pod running", 0.5)
    kubectl.run("delete", "pvc", "busy", "-n", namespace, "--wait=false")
    for _ in range(3):
        found = get(kubectl, namespace, "pvc", "busy")
        assert found is not None and found["metadata"].get("deletionTimestamp")
        assert "kubernetes.io/pvc-protection" in found["metadata"]["finalizers"]
        assert kubectl.run("get", "pvc", "busy", "-n", namespace).stdout.splitlines()[1].split()[1] == "Terminating"
        assert running(kubectl, namespace, "user")
        time.sleep(1)
    kubectl.run("delete", "pod", "user", "-n", namespace, "--timeout=60s")
    wait_for(lambda: get(kubectl, namespace, "pvc", "busy") is None, 60, "the claim gone with its pod", 0.5)
