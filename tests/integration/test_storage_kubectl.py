"""Persistent storage through a real `shipmate server` and kubectl v1.35, with fake nodes (no agent: the test
plays the node, marking local-path volumes Available as the agent does once it made the directory):
StorageClass/PV/PVC columns, validation and `kubectl explain`; static binding, phases, reclaim; the default
class (admission and retroactive); pvc-/pv-protection; scheduling with volumes (a missing claim, WaitForFirst
Consumer provisioning on the node the pod lands on, PV node affinity, local-path capacity); quota; resize;
RBAC defaults (a namespace admin creates no PersistentVolume); what a node may read and write of volumes;
CSIStorageCapacity (discovery, columns, explain, immutability)."""
from __future__ import annotations

import copy
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.integration.test_apiserver_kubectl import NODE, Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration]

DIR_ANNOTATION = "storage.shipmate.io/local-path-dir"
NODE_LABEL = "storage.shipmate.io/node"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = Server(tmp_path_factory.mktemp("storage"))
    srv.extra_args = ["--node-monitor-grace-period", "1h"]  # fake nodes stay Ready
    srv.start()
    yield srv
    srv.stop()


def get(server: Server, path: str) -> Any:
    status, body = server.request("GET", path)
    return body if status == 200 else None


def apply(server: Server, *objects: dict[str, Any], check: bool = True):
    return server.kubectl("apply", "-f", "-", check=check,
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def make_node(server: Server, name: str, local_path_dir: str | None = None, storage: str = "10Gi",
              labels: dict[str, str] | None = None) -> None:
    node = copy.deepcopy(NODE)
    node["metadata"] = {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}}
    if local_path_dir:
        node["metadata"]["annotations"] = {DIR_ANNOTATION: local_path_dir}
    node["status"]["capacity"]["ephemeral-storage"] = storage
    status, body = server.request("POST", "/api/v1/nodes", node)
    assert status == 201, body


def claim(name: str, size: str = "1Gi", namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def volume(name: str, size: str = "1Gi", path: str = "/srv/data", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": path}, **spec}}


def pod(name: str, claim_name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}], **spec}}


def phase(server: Server, kind: str, name: str, namespace: str = "default") -> str | None:
    path = f"/api/v1/persistentvolumes/{name}" if kind == "pv" else \
        f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
    found = get(server, path)
    return found["status"].get("phase") if found else None


def scheduled_message(server: Server, name: str, namespace: str = "default") -> str:
    found = get(server, f"/api/v1/namespaces/{namespace}/pods/{name}") or {}
    return next((c.get("message", "") for c in (found.get("status") or {}).get("conditions") or []
                 if c["type"] == "PodScheduled"), "")


def patch_as_node(server: Server, node: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """A merge patch impersonating the node (the agent patches its volumes' status without reading it first)."""
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method="PATCH", headers={
        "Content-Type": "application/merge-patch+json", "Impersonate-User": f"system:node:{node}",
        "Impersonate-Group": "system:nodes"})
    try:
        with server.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def node_of(server: Server, name: str, namespace: str = "default") -> str:
    return ((get(server, f"/api/v1/namespaces/{namespace}/pods/{name}") or {}).get("spec") or {}).get("nodeName", "")


class FakeAgents:
    """Plays the agents of the fake nodes: a Pending local-path volume labelled for one of them gets its
    directory "made" (phase Available), a released one "removed" (reason DirectoryRemoved)."""

    def __init__(self, server: Server, nodes: set[str]):
        self.server, self.nodes = server, nodes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "FakeAgents":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)

    def _loop(self) -> None:
        while not self._stop.wait(0.1):
            for found in (get(self.server, "/api/v1/persistentvolumes") or {}).get("items", []):
                meta, status = found["metadata"], found.get("status") or {}
                if (meta.get("labels") or {}).get(NODE_LABEL) not in self.nodes:
                    continue
                path = f"/api/v1/persistentvolumes/{meta['name']}/status"
                if status.get("phase") == "Pending" and not meta.get("deletionTimestamp"):
                    self.server.request("PATCH", path, {"status": {"phase": "Available"}},
                                        content_type="application/merge-patch+json")
                elif status.get("phase") == "Released" and status.get("reason") != "DirectoryRemoved" and \
                        found["spec"].get("persistentVolumeReclaimPolicy") == "Delete":
                    self.server.request("PATCH", path, {"status": {"reason": "DirectoryRemoved"}},
                                        content_type="application/merge-patch+json")


def test_classes_volumes_claims_columns_validation_and_explain(server: Server) -> None:
    rows = server.kubectl("get", "sc").stdout.splitlines()
    assert rows[0].split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION",
                               "AGE"]
    assert rows[1].split()[:6] == ["local-path", "(default)", "shipmate.io/local-path", "Delete",
                                   "WaitForFirstConsumer", "true"]
    apply(server, volume("col-pv", "2Gi", persistentVolumeReclaimPolicy="Retain", storageClassName="manual"))
    wait_for(lambda: phase(server, "pv", "col-pv") == "Available", 10, "col-pv Available")
    rows = server.kubectl("get", "pv", "col-pv", "-o", "wide").stdout.splitlines()
    assert rows[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
                               "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE", "VOLUMEMODE"]
    assert rows[1].split()[:6] == ["col-pv", "2Gi", "RWO", "Retain", "Available", "manual"]
    assert rows[1].split()[-1] == "Filesystem"
    pv = get(server, "/api/v1/persistentvolumes/col-pv")
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert pv["spec"]["hostPath"] == {"path": "/srv/data", "type": ""} and pv["spec"]["volumeMode"] == "Filesystem"
    assert pv["status"]["lastPhaseTransitionTime"]

    def refused(obj: dict[str, Any]) -> str:
        result = apply(server, obj, check=False)
        assert result.returncode != 0
        return result.stderr
    bad = volume("bad-pv")
    del bad["spec"]["capacity"]
    assert "spec.capacity: Required value" in refused(bad)
    assert "spec.nodeAffinity: Required value: Local volume requires node affinity" in refused(
        {**volume("bad-pv"), "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                                      "local": {"path": "/mnt/disk"}}})
    assert "spec.hostPath.path: Invalid value: \"/srv/../etc\": must not contain '..'" in refused(
        volume("bad-pv", path="/srv/../etc"))
    assert 'spec.persistentVolumeReclaimPolicy: Unsupported value: "Keep": supported values: "Delete", ' \
           '"Recycle", "Retain"' in refused(volume("bad-pv", persistentVolumeReclaimPolicy="Keep"))
    assert "spec: Required value: must specify a volume type" in refused(
        {**volume("bad-pv"), "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}})
    assert 'unknown field "spec.hostPath.bogus"' in refused(
        volume("bad-pv") | {"spec": {**volume("bad-pv")["spec"], "hostPath": {"path": "/x", "bogus": 1}}})
    sc = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
          "provisioner": "example.com/fast", "parameters": {"type": "ssd"}}
    apply(server, sc)
    stored = get(server, "/apis/storage.k8s.io/v1/storageclasses/fast")
    assert stored["reclaimPolicy"] == "Delete" and stored["volumeBindingMode"] == "Immediate"
    changed = apply(server, {**sc, "provisioner": "example.com/slow", "parameters": {"type": "hdd"}}, check=False)
    assert "provisioner: Forbidden: updates to provisioner are forbidden." in changed.stderr
    assert "parameters: Forbidden: updates to parameters are forbidden." in changed.stderr
    assert 'volumeBindingMode: Unsupported value: "Later"' in refused(
        {**sc, "metadata": {"name": "other"}, "volumeBindingMode": "Later"})
    explained = server.kubectl("explain", "pv.spec.hostPath").stdout
    assert "KIND:       PersistentVolume" in explained and "DirectoryOrCreate" in explained
    assert "WaitForFirstConsumer" in server.kubectl("explain", "storageclass.volumeBindingMode").stdout
    server.kubectl("delete", "sc", "fast")
    server.kubectl("delete", "pv", "col-pv")


def test_static_binding_phases_and_reclaim(server: Server) -> None:
    apply(server, {**volume("small", "1Gi", storageClassName="", persistentVolumeReclaimPolicy="Retain"),
                   "metadata": {"name": "small", "labels": {"tier": "gold"}}},
          volume("big", "5Gi", storageClassName="", persistentVolumeReclaimPolicy="Delete"),
          volume("recycled", "3Gi", storageClassName="slow", persistentVolumeReclaimPolicy="Recycle"))
    apply(server, claim("pick-small", "500Mi", storageClassName="", selector={"matchLabels": {"tier": "gold"}}),
          claim("pick-big", "2Gi", storageClassName=""), claim("too-big", "50Gi", storageClassName=""),
          claim("pick-recycled", "1Gi", storageClassName="slow"))
    wait_for(lambda: phase(server, "pvc", "pick-small") == "Bound" and phase(server, "pvc", "pick-big") == "Bound"
             and phase(server, "pvc", "pick-recycled") == "Bound", 20, "claims bound")
    small = get(server, "/api/v1/namespaces/default/persistentvolumeclaims/pick-small")
    assert small["spec"]["volumeName"] == "small" and small["status"]["capacity"] == {"storage": "1Gi"}
    assert small["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert get(server, "/api/v1/namespaces/default/persistentvolumeclaims/pick-big")["spec"]["volumeName"] == "big"
    pv = get(server, "/api/v1/persistentvolumes/small")
    assert pv["spec"]["claimRef"]["name"] == "pick-small" and pv["status"]["phase"] == "Bound"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    row = server.kubectl("get", "pvc", "pick-small").stdout.splitlines()[1].split()
    assert row[:5] == ["pick-small", "Bound", "small", "1Gi", "RWO"]
    assert phase(server, "pvc", "too-big") == "Pending"
    wait_for(lambda: "no persistent volumes available for this claim and no storage class is set" in server.kubectl(
        "get", "events", "--field-selector", "involvedObject.name=too-big").stdout, 10, "FailedBinding event")
    for name in ("pick-small", "pick-big", "pick-recycled", "too-big"):
        server.kubectl("delete", "pvc", name)
    wait_for(lambda: phase(server, "pv", "small") == "Released", 10, "Retain: Released")
    wait_for(lambda: phase(server, "pv", "big") == "Failed", 10, "Delete without a deleter: Failed")
    assert "no deletable volume plugin matched" in get(server, "/api/v1/persistentvolumes/big")["status"]["message"]
    wait_for(lambda: phase(server, "pv", "recycled") == "Failed", 10, "Recycle: Failed")
    # A claim naming a volume that is released to another claim waits.
    apply(server, claim("late", "1Gi", storageClassName="", volumeName="small"))
    time.sleep(1)
    assert phase(server, "pvc", "late") == "Pending"
    server.kubectl("delete", "pvc", "late")
    server.kubectl("delete", "pv", "small", "big", "recycled")


def test_default_class_admission_and_retroactive_assignment(server: Server) -> None:
    namespace = "defaults"
    server.kubectl("create", "namespace", namespace)
    apply(server, claim("implicit", namespace=namespace), claim("explicit-none", namespace=namespace,
                                                                storageClassName=""))
    base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims"
    assert get(server, f"{base}/implicit")["spec"]["storageClassName"] == "local-path"
    assert get(server, f"{base}/explicit-none")["spec"]["storageClassName"] == ""
    newer = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
             "metadata": {"name": "newer-default", "annotations": {
                 "storageclass.kubernetes.io/is-default-class": "true"}}, "provisioner": "example.com/x"}
    time.sleep(1.1)                 # a later creationTimestamp: the newest default wins
    apply(server, newer)
    apply(server, claim("second", namespace=namespace))
    assert get(server, f"{base}/second")["spec"]["storageClassName"] == "newer-default"
    # No default at all: created without a class, given one once a default exists.
    server.kubectl("annotate", "sc", "local-path", "newer-default",
                   "storageclass.kubernetes.io/is-default-class=false", "--overwrite")
    apply(server, claim("orphan", namespace=namespace))
    assert "storageClassName" not in get(server, f"{base}/orphan")["spec"]
    server.kubectl("annotate", "sc", "local-path", "storageclass.kubernetes.io/is-default-class=true", "--overwrite")
    wait_for(lambda: get(server, f"{base}/orphan")["spec"].get("storageClassName") == "local-path", 15,
             "retroactive default class")
    server.kubectl("delete", "sc", "newer-default")
    server.kubectl("delete", "namespace", namespace, "--wait=false")


def test_missing_claim_then_wait_for_first_consumer_on_the_chosen_node(server: Server) -> None:
    for name in ("wffc-a", "wffc-b"):
        make_node(server, name)                           # no local-path directory: no provisioning there
    make_node(server, "wffc-c", local_path_dir="/var/lib/shipmate/storage")
    apply(server, pod("needs-later", "later"))
    wait_for(lambda: scheduled_message(server, "needs-later").startswith(
        '0/3 nodes are available: persistentvolumeclaim "later" not found. preemption: 0/3 nodes are '
        "available: 3 Preemption is not helpful for scheduling."), 15, "Pending: claim not found")
    assert get(server, "/api/v1/namespaces/default/pods/needs-later")["status"]["phase"] == "Pending"
    apply(server, claim("later", "256Mi"))
    wait_for(lambda: get(server, "/api/v1/persistentvolumes?labelSelector=storage.shipmate.io/node%3Dwffc-c")[
        "items"], 20, "a volume provisioned for the node the pod goes to")
    later = get(server, "/api/v1/namespaces/default/persistentvolumeclaims/later")
    assert later["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == "wffc-c"
    assert not node_of(server, "needs-later")          # PreBind waits for the volume's node
    with FakeAgents(server, {"wffc-c"}):
        wait_for(lambda: node_of(server, "needs-later") == "wffc-c", 20, "pod bound once the claim is")
        assert phase(server, "pvc", "later") == "Bound"
        pv = get(server, f"/api/v1/persistentvolumes/{get(server, '/api/v1/namespaces/default/persistentvolumeclaims/later')['spec']['volumeName']}")
        assert pv["spec"]["hostPath"]["path"].startswith("/var/lib/shipmate/storage/pvc-")
        assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
        assert pv["metadata"]["finalizers"] == ["external-provisioner.volume.kubernetes.io/finalizer",
                                                "kubernetes.io/pv-protection"]
        events = server.kubectl("get", "events", "--field-selector", "involvedObject.name=later").stdout
        for reason in ("WaitForPodScheduled", "ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"):
            assert reason in events, events
        # Protection: the claim stays Terminating while the (scheduled) pod exists.
        server.kubectl("delete", "pvc", "later", "--wait=false")
        time.sleep(1)
        assert server.kubectl("get", "pvc", "later").stdout.splitlines()[1].split()[1] == "Terminating"
        server.kubectl("delete", "pod", "needs-later", "--grace-period=0", "--force")
        wait_for(lambda: get(server, "/api/v1/namespaces/default/persistentvolumeclaims/later") is None, 20,
                 "claim gone with its pod")
        wait_for(lambda: get(server, f"/api/v1/persistentvolumes/{pv['metadata']['name']}") is None, 20,
                 "volume deleted once its node removed the directory")
    # Not enough storage anywhere: 20Gi on a 10Gi node.
    apply(server, claim("huge", "20Gi"), pod("needs-huge", "huge"))
    wait_for(lambda: "did not have enough free storage" in scheduled_message(server, "needs-huge"), 15,
             "not enough free storage")
    assert scheduled_message(server, "needs-huge") == (
        "0/3 nodes are available: 3 node(s) did not have enough free storage. preemption: 0/3 nodes are "
        "available: 3 Preemption is not helpful for scheduling.")
    server.kubectl("delete", "pod", "needs-huge", "--grace-period=0", "--force")
    server.kubectl("delete", "pvc", "huge")


def test_bound_local_volume_pins_its_pods_to_its_node(server: Server) -> None:
    for name in ("aff-a", "aff-b"):
        make_node(server, name, labels={"pool": "aff"})
    local_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-disks"},
                   "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}
    disk = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "disk-b"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local-disks",
                     "local": {"path": "/mnt/disk"}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
                         {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                "values": ["aff-b"]}]}]}}}}
    apply(server, local_class, disk)
    apply(server, claim("on-disk", storageClassName="local-disks"))
    time.sleep(0.5)
    assert phase(server, "pvc", "on-disk") == "Pending"            # WaitForFirstConsumer: not bound yet
    selector = {"pool": "aff"}
    apply(server, pod("disk-user", "on-disk", nodeSelector=selector))
    wait_for(lambda: node_of(server, "disk-user") == "aff-b", 20, "the pod goes where the volume is")
    assert get(server, "/api/v1/namespaces/default/persistentvolumeclaims/on-disk")["spec"]["volumeName"] == "disk-b"
    # A second pod of the bound claim can only go to aff-b; with aff-b excluded it cannot go anywhere.
    apply(server, pod("disk-user-2", "on-disk", nodeSelector=selector,
                      affinity={"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                          "nodeSelectorTerms": [{"matchExpressions": [
                              {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["aff-b"]}]}]}}}))
    wait_for(lambda: "didn't match" in scheduled_message(server, "disk-user-2"), 15, "disk-user-2 unschedulable")
    message = scheduled_message(server, "disk-user-2")
    assert "1 node(s) didn't match PersistentVolume's node affinity" in message, message
    # And without a free matching volume: "didn't find available persistent volumes to bind".
    apply(server, claim("no-disk", storageClassName="local-disks"), pod("no-disk-user", "no-disk", nodeSelector=selector))
    wait_for(lambda: "2 node(s) didn't find available persistent volumes to bind" in scheduled_message(
        server, "no-disk-user"), 15, "no volume to bind")
    for name in ("disk-user", "disk-user-2", "no-disk-user"):
        server.kubectl("delete", "pod", name, "--grace-period=0", "--force")
    server.kubectl("delete", "pvc", "on-disk", "no-disk")
    server.kubectl("delete", "pv", "disk-b")
    server.kubectl("delete", "sc", "local-disks")


def test_storage_quota_and_resize(server: Server) -> None:
    namespace = "quota-storage"
    server.kubectl("create", "namespace", namespace)
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "disk", "namespace": namespace},
             "spec": {"hard": {"requests.storage": "3Gi", "persistentvolumeclaims": "3",
                               "local-path.storageclass.storage.k8s.io/requests.storage": "2Gi",
                               "local-path.storageclass.storage.k8s.io/persistentvolumeclaims": "2"}}}
    apply(server, quota)
    apply(server, claim("one", "1Gi", namespace=namespace))
    refused = apply(server, claim("two", "1500Mi", namespace=namespace), check=False)
    assert ('persistentvolumeclaims "two" is forbidden: exceeded quota: disk, requested: '
            "local-path.storageclass.storage.k8s.io/requests.storage=1500Mi, used: "
            "local-path.storageclass.storage.k8s.io/requests.storage=1Gi, limited: "
            "local-path.storageclass.storage.k8s.io/requests.storage=2Gi") in refused.stderr
    apply(server, claim("other", "500Mi", namespace=namespace, storageClassName=""))
    wait_for(lambda: get(server, f"/api/v1/namespaces/{namespace}/resourcequotas/disk")["status"]["used"] == {
        "local-path.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "local-path.storageclass.storage.k8s.io/requests.storage": "1Gi", "persistentvolumeclaims": "2",
        "requests.storage": "1524Mi"}, 15, "quota used")
    # Resize: the local-path class allows it; a bound claim grows (its recorded size too) within the quota.
    make_node(server, "resize-node", local_path_dir="/var/lib/shipmate/storage", storage="4Gi")
    with FakeAgents(server, {"resize-node"}):
        apply(server, pod("grow", "one", namespace=namespace, nodeSelector={"kubernetes.io/hostname": "resize-node"}))
        wait_for(lambda: phase(server, "pvc", "one", namespace) == "Bound", 20, "one bound")
        over = server.kubectl("patch", "pvc", "one", "-n", namespace, "-p",
                              '{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}', check=False)
        assert "exceeded quota: disk, requested: local-path.storageclass.storage.k8s.io/requests.storage=2Gi" \
            in over.stderr
        server.kubectl("patch", "pvc", "one", "-n", namespace, "-p",
                       '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')
        base = f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/one"
        wait_for(lambda: get(server, base)["status"].get("capacity") == {"storage": "2Gi"}, 15, "claim resized")
        assert get(server, f"/api/v1/persistentvolumes/{get(server, base)['spec']['volumeName']}")["spec"][
            "capacity"] == {"storage": "2Gi"}
        events = server.kubectl("get", "events", "-n", namespace, "--field-selector", "involvedObject.name=one").stdout
        assert "VolumeResizeSuccessful" in events
        server.kubectl("delete", "pod", "grow", "-n", namespace, "--grace-period=0", "--force")
    # A class without allowVolumeExpansion: 403.
    apply(server, {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fixed"},
                   "provisioner": "example.com/fixed"},
          volume("fixed-pv", "1Gi", storageClassName="fixed"), claim("fixed", "1Gi", storageClassName="fixed"))
    wait_for(lambda: phase(server, "pvc", "fixed") == "Bound", 15, "fixed bound")
    grow = server.kubectl("patch", "pvc", "fixed", "-p",
                          '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}', check=False)
    assert ('persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can be resized and the '
            "storageclass that provisions the pvc must support resize") in grow.stderr
    server.kubectl("delete", "pvc", "fixed")
    server.kubectl("delete", "pv", "fixed-pv")
    server.kubectl("delete", "namespace", namespace, "--wait=false")


def test_namespace_admins_create_claims_not_volumes(server: Server) -> None:
    server.kubectl("create", "namespace", "tenant")
    server.kubectl("create", "rolebinding", "alice-admin", "--clusterrole=admin", "--user=alice", "-n", "tenant")
    created = server.kubectl("apply", "--as=alice", "-n", "tenant", "-f", "-",
                             input=json.dumps(claim("mine", namespace="tenant")))
    assert "persistentvolumeclaim/mine created" in created.stdout
    refused = server.kubectl("apply", "--as=alice", "-f", "-", check=False,
                             input=json.dumps(volume("steal", path="/var/lib/shipmate/storage")))
    assert 'persistentvolumes "steal" is forbidden: User "alice" cannot' in refused.stderr or \
        'User "alice" cannot get resource "persistentvolumes"' in refused.stderr, refused.stderr
    assert server.kubectl("auth", "can-i", "create", "persistentvolumes", "--as=alice", check=False).stdout.strip() \
        == "no"
    assert server.kubectl("auth", "can-i", "create", "storageclasses", "--as=alice", check=False).stdout.strip() == "no"
    server.kubectl("delete", "namespace", "tenant", "--wait=false")


def test_what_a_node_may_do_with_volumes(server: Server) -> None:
    make_node(server, "authz-node", local_path_dir="/var/lib/shipmate/storage")
    as_node = ["--as=system:node:authz-node", "--as-group=system:nodes"]
    mine = {**volume("authz-mine", path="/var/lib/shipmate/storage/authz-mine_default_x",
                     storageClassName="local-path"),
            "metadata": {"name": "authz-mine", "labels": {NODE_LABEL: "authz-node"},
                         "annotations": {"pv.kubernetes.io/provisioned-by": "shipmate.io/local-path"}}}
    mine["spec"]["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["authz-node"]}]}]}}
    theirs = copy.deepcopy(mine)
    theirs["metadata"]["name"] = "authz-theirs"
    theirs["metadata"]["labels"][NODE_LABEL] = "other-node"
    theirs["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] = ["other-node"]
    apply(server, mine, theirs)
    listed = server.kubectl("get", "pv", "-l", f"{NODE_LABEL}=authz-node", "-o", "name", *as_node)
    assert listed.stdout.split() == ["persistentvolume/authz-mine"]
    everything = server.kubectl("get", "pv", *as_node, check=False)
    assert everything.returncode != 0 and "can only list or watch persistentvolumes with the label selector" \
        in everything.stderr
    assert server.kubectl("get", "pv", "authz-theirs", *as_node, check=False).returncode != 0
    status, body = patch_as_node(server, "authz-node", "/api/v1/persistentvolumes/authz-mine/status",
                                 {"status": {"phase": "Available"}})
    assert status == 200, body
    assert phase(server, "pv", "authz-mine") == "Available"
    status, body = patch_as_node(server, "authz-node", "/api/v1/persistentvolumes/authz-theirs/status",
                                 {"status": {"phase": "Available"}})
    assert status == 403 and "can only update the status of local-path persistentvolumes on itself" in body["message"]
    status, body = patch_as_node(server, "authz-node", "/api/v1/persistentvolumes/authz-mine/status",
                                 {"status": {"phase": "Bound"}})
    assert status == 403 and 'may not move persistentvolume "authz-mine" from phase Available to Bound' \
        in body["message"]
    status, body = patch_as_node(server, "authz-node", "/api/v1/persistentvolumes/authz-mine",
                                 {"spec": {"hostPath": {"path": "/etc"}}})
    assert status == 403, body
    # Claims and their volumes: only those of pods bound to the node.
    apply(server, claim("authz-claim", storageClassName=""))
    assert server.kubectl("get", "pvc", "authz-claim", *as_node, check=False).returncode != 0
    server.kubectl("delete", "pv", "authz-mine", "authz-theirs", "--wait=false")
    server.kubectl("delete", "pvc", "authz-claim")


CAPACITY_YAML = """\
apiVersion: storage.k8s.io/v1
kind: CSIStorageCapacity
metadata:
  name: csisc-zone-a
  namespace: default
storageClassName: fast
nodeTopology:
  matchLabels:
    topology.kubernetes.io/zone: zone-a
capacity: 1024Mi
maximumVolumeSize: 100Gi
"""


def test_csi_storage_capacities(server: Server) -> None:
    """Discovery (kind and resource.group lookups), create from YAML, kubectl's columns, explain, strict
    fields, the immutable GetCapacity inputs (422, upstream's message), RBAC defaults and delete."""
    resources = [line.split() for line in server.kubectl("api-resources", "--api-group=storage.k8s.io").stdout
                 .splitlines() if line.startswith("csistoragecapacities ")]
    assert resources == [["csistoragecapacities", "storage.k8s.io/v1", "true", "CSIStorageCapacity"]]
    assert "csistoragecapacity.storage.k8s.io/csisc-zone-a created" in \
        server.kubectl("create", "-f", "-", input=CAPACITY_YAML).stdout
    stored = get(server, "/apis/storage.k8s.io/v1/namespaces/default/csistoragecapacities/csisc-zone-a")
    assert stored["capacity"] == "1Gi" and stored["maximumVolumeSize"] == "100Gi" and "generation" not in \
        stored["metadata"]
    rows = server.kubectl("get", "csistoragecapacities").stdout.splitlines()
    assert rows[0].split() == ["NAME", "STORAGECLASSNAME", "CAPACITY"]  # upstream's printer has no AGE
    assert rows[1].split() == ["csisc-zone-a", "fast", "1Gi"]
    for name in ("CSIStorageCapacity", "csistoragecapacities.storage.k8s.io", "csistoragecapacity",
                 "csistoragecapacities.v1.storage.k8s.io"):
        assert server.kubectl("get", name, "csisc-zone-a", "-o", "name").stdout.strip() == \
            "csistoragecapacity.storage.k8s.io/csisc-zone-a"
    assert server.kubectl("get", "csistoragecapacities", "-A").stdout.splitlines()[1].split()[:2] == \
        ["default", "csisc-zone-a"]
    explained = server.kubectl("explain", "csistoragecapacities").stdout
    assert "GROUP:      storage.k8s.io\nKIND:       CSIStorageCapacity\nVERSION:    v1" in explained
    assert "storageClassName\t<string> -required-" in explained and "nodeTopology\t<LabelSelector>" in explained
    assert "matchExpressions" in server.kubectl("explain", "csistoragecapacity.nodeTopology").stdout
    # Only the reported numbers may change.
    server.kubectl("patch", "csistoragecapacity", "csisc-zone-a", "--type=merge", "-p", '{"capacity": "2Gi"}')
    assert get(server, "/apis/storage.k8s.io/v1/namespaces/default/csistoragecapacities/csisc-zone-a")[
        "capacity"] == "2Gi"
    moved = server.kubectl("patch", "csistoragecapacity", "csisc-zone-a", "--type=merge", "-p",
                           '{"storageClassName": "slow", "nodeTopology": {"matchLabels": '
                           '{"topology.kubernetes.io/zone": "zone-b"}}}', check=False)
    assert moved.returncode != 0
    assert 'The CSIStorageCapacity "csisc-zone-a" is invalid: \n* nodeTopology: Invalid value: v1.LabelSelector{' \
           'MatchLabels:map[string]string{"topology.kubernetes.io/zone":"zone-b"}, ' \
           'MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable\n' \
           '* storageClassName: Invalid value: "slow": field is immutable' in moved.stderr, moved.stderr
    status, body = server.request("PATCH", "/apis/storage.k8s.io/v1/namespaces/default/csistoragecapacities/"
                                  "csisc-zone-a", {"storageClassName": "slow"},
                                  content_type="application/merge-patch+json")
    assert status == 422 and body["reason"] == "Invalid"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "message": 'Invalid value: "slow": '
                                          "field is immutable", "field": "storageClassName"}]
    bad = CAPACITY_YAML.replace("csisc-zone-a", "csisc-bad").replace("1024Mi", "-1Gi").replace(
        "storageClassName: fast", "storageClassName: Fast_SSD")
    refused = server.kubectl("create", "-f", "-", input=bad, check=False).stderr
    assert 'capacity: Invalid value: "-1Gi": must be greater than or equal to 0' in refused
    assert 'storageClassName: Invalid value: "Fast_SSD": a lowercase RFC 1123 subdomain' in refused
    unknown = server.kubectl("create", "-f", "-", check=False,
                             input=CAPACITY_YAML.replace("csisc-zone-a", "csisc-x") + "spec: {}\n").stderr
    assert 'unknown field "spec"' in unknown, unknown
    # As upstream's bootstrap policy: view/edit/admin do not include them.
    server.kubectl("create", "namespace", "capacity-tenant")
    server.kubectl("create", "rolebinding", "bob-admin", "--clusterrole=admin", "--user=bob", "-n",
                   "capacity-tenant")
    assert server.kubectl("auth", "can-i", "list", "csistoragecapacities", "--as=bob", "-n", "capacity-tenant",
                          check=False).stdout.strip() == "no"
    server.kubectl("delete", "namespace", "capacity-tenant", "--wait=false")
    assert 'csistoragecapacity.storage.k8s.io "csisc-zone-a" deleted' in \
        server.kubectl("delete", "csistoragecapacity", "csisc-zone-a").stdout
    assert server.kubectl("get", "csistoragecapacities", "-o", "name").stdout.strip() == ""
