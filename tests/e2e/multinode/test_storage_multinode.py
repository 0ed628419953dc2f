"""Issue 16 multi-node acceptance: a WaitForFirstConsumer claim is provisioned on the node its pod landed on
(the agent of that node makes the directory under its own --local-path-dir), and a pod using a bound local
volume is scheduled only to that volume's node (upstream's "node(s) didn't match PersistentVolume's node
affinity" for the others); an administrator's `local` volume pins its claim's pods the same way.

Runs against the netns harness (started here: 3 nodes), or against installed machines when
SHIPMATE_MULTINODE_KUBECONFIG names their cluster (then files are checked through `kubectl exec` only).
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterator

import pytest

from tests.e2e.multinode.harness import MultiNodeCluster
from tests.e2e.multinode.test_multinode import EXTERNAL_KUBECONFIG, ExternalCluster, node_names, ready_status
from tests.support import wait_for

pytestmark = pytest.mark.e2e

NAMESPACE = "g-storage"
IMAGE = "127.0.0.1:5000/library/busybox:latest"
KEEP_RUNNING = "trap 'exit 0' TERM; sleep 3600 & wait"
DIR_ANNOTATION = "storage.shipmate.io/local-path-dir"
LOADED = 120


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    if EXTERNAL_KUBECONFIG:
        external = ExternalCluster(EXTERNAL_KUBECONFIG)
        external.kubectl("create", "namespace", NAMESPACE, check=False)
        yield external
        external.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        return
    harness = MultiNodeCluster(3)
    try:
        harness.up()
    except TimeoutError as error:
        logs = harness.logs()
        harness.down()
        pytest.fail(f"{error}\n{logs}")
    harness.kubectl("create", "namespace", NAMESPACE)
    try:
        yield harness
    finally:
        harness.down()


@pytest.fixture(scope="module")
def nodes(cluster: Any) -> list[str]:
    def all_ready() -> list[str] | None:
        names = node_names(cluster)
        return names if len(names) == 3 and all(ready_status(cluster, n) == "True" for n in names) else None
    return wait_for(all_ready, 120, "3 nodes Ready", 1.0)


def apply(cluster: Any, *objects: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-",
                    stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def get(cluster: Any, *args: str, namespaced: bool = True) -> Any:
    scope = ["-n", NAMESPACE] if namespaced else []
    result = cluster.kubectl("get", *args, *scope, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def claim(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "32Mi"}}, **spec}}


def pod(name: str, claim_name: str, script: str = "true", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"{script}; {KEEP_RUNNING}"],
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}], **spec}}


def running(cluster: Any, name: str) -> dict | None:
    found = get(cluster, "pod", name)
    statuses = (found or {}).get("status", {}).get("containerStatuses") or []
    return found if statuses and all("running" in s.get("state", {}) for s in statuses) else None


def read_file(cluster: Any, pod_obj: dict, path: str) -> str:
    code, out, _ = cluster.exec(pod_obj, "app", ["cat", path])
    return out if code == 0 else ""


def scheduled_message(cluster: Any, name: str) -> str:
    found = get(cluster, "pod", name) or {}
    return next((c.get("message", "") for c in found.get("status", {}).get("conditions") or []
                 if c["type"] == "PodScheduled" and c["status"] == "False"), "")


def test_wait_for_first_consumer_claim_provisioned_on_the_pods_node(cluster: Any, nodes: list[str]) -> None:
    target = nodes[1]
    apply(cluster, claim("placed"), pod("placer", "placed", "echo here > /data/where",
                                        nodeSelector={"kubernetes.io/hostname": target}))
    first = wait_for(lambda: running(cluster, "placer"), LOADED, "placer running", 0.5)
    assert first["spec"]["nodeName"] == target
    pvc = get(cluster, "pvc", "placed")
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == target
    volume = get(cluster, "pv", pvc["spec"]["volumeName"], namespaced=False)
    terms = volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [target]}]}]
    base = get(cluster, "node", target, namespaced=False)["metadata"]["annotations"][DIR_ANNOTATION]
    assert os.path.dirname(volume["spec"]["hostPath"]["path"]) == base
    assert read_file(cluster, first, "/data/where") == "here\n"
    if isinstance(cluster, MultiNodeCluster):       # the directory is on that node's disk only
        assert os.path.isfile(os.path.join(volume["spec"]["hostPath"]["path"], "where"))
        for other in nodes:
            if other != target:
                other_base = get(cluster, "node", other, namespaced=False)["metadata"]["annotations"][DIR_ANNOTATION]
                assert not os.path.exists(os.path.join(other_base, os.path.basename(volume["spec"]["hostPath"]["path"])))

    # A pod without a node selector using the bound claim goes to that node; one kept off it stays Pending.
    cluster.kubectl("delete", "pod", "placer", "-n", NAMESPACE, "--timeout=60s")
    apply(cluster, pod("follower", "placed"))
    follower = wait_for(lambda: running(cluster, "follower"), LOADED, "follower running", 0.5)
    assert follower["spec"]["nodeName"] == target
    assert read_file(cluster, follower, "/data/where") == "here\n"
    elsewhere = [n for n in nodes if n != target]
    apply(cluster, pod("exiled", "placed", affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                     "values": elsewhere}]}]}}}))
    message = wait_for(lambda: scheduled_message(cluster, "exiled"), 30, "exiled unschedulable", 0.5)
    assert message.startswith("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                              "2 node(s) didn't match PersistentVolume's node affinity. "), message
    for name in ("follower", "exiled"):
        cluster.kubectl("delete", "pod", name, "-n", NAMESPACE, "--timeout=60s")
    cluster.kubectl("delete", "pvc", "placed", "-n", NAMESPACE, "--timeout=60s")
    wait_for(lambda: get(cluster, "pv", volume["metadata"]["name"], namespaced=False) is None, 60,
             "the volume deleted", 0.5)


def test_an_admins_local_volume_pins_its_pods(cluster: Any, nodes: list[str]) -> None:
    owner = nodes[2]
    local_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "g-local-disks"},
                   "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}
    disk_dir = "/tmp"                      # exists on every machine; what matters is the affinity
    disk = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "g-disk"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "storageClassName": "g-local-disks", "persistentVolumeReclaimPolicy": "Retain",
                     "local": {"path": disk_dir}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
                         {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                "values": [owner]}]}]}}}}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List",
                                                           "items": [local_class, disk]}))
    try:
        apply(cluster, claim("on-disk", storageClassName="g-local-disks"), pod("disk-user", "on-disk"))
        user = wait_for(lambda: running(cluster, "disk-user"), LOADED, "disk-user running", 0.5)
        assert user["spec"]["nodeName"] == owner
        assert get(cluster, "pvc", "on-disk")["spec"]["volumeName"] == "g-disk"
        cluster.kubectl("delete", "pod", "disk-user", "-n", NAMESPACE, "--timeout=60s")
        cluster.kubectl("delete", "pvc", "on-disk", "-n", NAMESPACE, "--timeout=60s")
    finally:
        cluster.kubectl("delete", "pv", "g-disk", "--wait=false", check=False)
        cluster.kubectl("delete", "storageclass", "g-local-disks", check=False)
