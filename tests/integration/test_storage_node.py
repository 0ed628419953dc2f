"""Persistent storage with real pods on a private node (own netns, containerd, server and agent; see
private_node.py): a claim without a class gets the default `local-path` class, is provisioned on the pod's
node (the agent makes the directory under its --local-path-dir) and bound; data survives the pod, a new pod
and an agent restart; subPath and readOnly mounts; deleting the claim removes volume and directory (Delete),
or keeps both, Released (Retain); an admin's hostPath PV is mounted; a StatefulSet's pod comes back to its
claim; the agent refuses local-path volumes outside its directory, through a symlink, or of another node."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.integration.private_node import BUSYBOX, PrivateNode, running_node
from tests.support import wait_for

pytestmark = pytest.mark.integration

NAME = "storage-node"
LOADED = 120          # generous: the shared 2-core box is often busy
COMMAND = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest) -> Iterator[PrivateNode]:
    with running_node(name=NAME) as private:
        failed = request.session.testsfailed
        yield private
        if request.session.testsfailed > failed:
            print(f"--- server:\n{private.server.log(150)}\n--- agent:\n{private.agent.log(80)}")


def base_dir(node: PrivateNode) -> Path:
    return node.work_dir / "storage"          # the agent's default: storage/ beside its --root-dir


def claim(name: str, size: str = "64Mi", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}}


def pod(name: str, claim_name: str, script: str, mount: dict[str, Any] | None = None,
        read_only_claim: bool = False) -> dict[str, Any]:
    source: dict[str, Any] = {"claimName": claim_name}
    if read_only_claim:
        source["readOnly"] = True
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", f"{script}; trap 'exit 0' TERM; sleep 3600 & wait"],
                "volumeMounts": [{"name": "data", "mountPath": "/data", **(mount or {})}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": source}]}}


def apply(node: PrivateNode, *objects: dict[str, Any]) -> None:
    node.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def get(node: PrivateNode, *args: str) -> Any:
    result = node.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def running(node: PrivateNode, name: str) -> bool:
    found = get(node, "pod", name)
    return bool(found) and found["status"].get("phase") == "Running" and all(
        c.get("ready") for c in found["status"].get("containerStatuses") or [{}])


def delete_pod(node: PrivateNode, name: str) -> None:
    node.kubectl("delete", "pod", name, "--wait=true", "--timeout=60s")


def test_claim_provisioned_on_the_pods_node_keeps_data_and_is_reclaimed(node: PrivateNode) -> None:
    apply(node, claim("data"), pod("writer", "data", "echo hello > /data/file"))
    wait_for(lambda: running(node, "writer"), LOADED, "writer Running")
    pvc = get(node, "pvc", "data")
    assert pvc["spec"]["storageClassName"] == "local-path" and pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NAME
    assert "kubernetes.io/pvc-protection" in pvc["metadata"]["finalizers"]
    volume = get(node, "pv", pvc["spec"]["volumeName"])
    path = Path(volume["spec"]["hostPath"]["path"])
    assert path.parent == base_dir(node) and volume["status"]["phase"] == "Bound"
    assert volume["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [NAME]
    assert (path / "file").read_text() == "hello\n"
    table = node.kubectl("get", "pvc", "data").stdout.split("\n")
    assert table[1].split()[:6] == ["data", "Bound", volume["metadata"]["name"], "64Mi", "RWO", "local-path"]
    events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=data").stdout
    for reason in ("ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"):
        assert reason in events, events

    # While a pod uses it, deleting the claim leaves it Terminating (pvc-protection).
    node.kubectl("delete", "pvc", "data", "--wait=false")
    assert get(node, "pvc", "data")["metadata"].get("deletionTimestamp")
    assert node.kubectl("get", "pvc", "data").stdout.split("\n")[1].split()[1] == "Terminating"
    node.kubectl("delete", "pod", "writer", "--wait=false")
    wait_for(lambda: get(node, "pvc", "data") is None, LOADED, "claim gone with its pod")
    wait_for(lambda: get(node, "pv", volume["metadata"]["name"]) is None, LOADED, "volume deleted (Delete policy)")
    wait_for(lambda: not path.exists(), 30, "directory removed by the agent")


def test_data_survives_pod_replacement_and_agent_restart(node: PrivateNode) -> None:
    apply(node, claim("keep"), pod("first", "keep", "echo kept > /data/file"))
    wait_for(lambda: running(node, "first"), LOADED, "first Running")
    delete_pod(node, "first")
    apply(node, pod("second", "keep", "cat /data/file > /data/seen"))
    wait_for(lambda: running(node, "second"), LOADED, "second Running")
    path = Path(get(node, "pv", get(node, "pvc", "keep")["spec"]["volumeName"])["spec"]["hostPath"]["path"])
    wait_for(lambda: (path / "seen").exists() and (path / "seen").read_text() == "kept\n", 30, "data read back")
    assert node.kubectl("exec", "second", "--", "cat", "/data/file").stdout == "kept\n"

    node.agent.stop()
    node.start_agent()
    wait_for(lambda: node.node_ready() is True, 60, "node Ready again")
    # (the node server listens again a moment after the agent restarted)
    wait_for(lambda: node.kubectl("exec", "second", "--", "cat", "/data/file", check=False).stdout == "kept\n", 30,
             "the data still there for the running pod")
    delete_pod(node, "second")
    apply(node, pod("third", "keep", "true"))
    wait_for(lambda: running(node, "third"), LOADED, "third Running after the agent restart")
    assert node.kubectl("exec", "third", "--", "cat", "/data/seen").stdout == "kept\n"
    delete_pod(node, "third")
    node.kubectl("delete", "pvc", "keep")


def test_sub_path_and_read_only(node: PrivateNode) -> None:
    apply(node, claim("shared"), pod("sub", "shared", "echo in-sub > /data/f", mount={"subPath": "nested/dir"}))
    wait_for(lambda: running(node, "sub"), LOADED, "subPath pod Running")
    path = Path(get(node, "pv", get(node, "pvc", "shared")["spec"]["volumeName"])["spec"]["hostPath"]["path"])
    assert (path / "nested" / "dir" / "f").read_text() == "in-sub\n"
    delete_pod(node, "sub")
    apply(node, pod("ro", "shared", "true", read_only_claim=True))
    wait_for(lambda: running(node, "ro"), LOADED, "read-only pod Running")
    assert node.kubectl("exec", "ro", "--", "cat", "/data/nested/dir/f").stdout == "in-sub\n"
    write = node.kubectl("exec", "ro", "--", "touch", "/data/x", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr
    delete_pod(node, "ro")
    node.kubectl("delete", "pvc", "shared")


def test_retain_keeps_the_directory_and_releases_the_volume(node: PrivateNode) -> None:
    keep_class = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "local-keep"},
                  "provisioner": "shipmate.io/local-path", "reclaimPolicy": "Retain",
                  "volumeBindingMode": "WaitForFirstConsumer"}
    apply(node, keep_class, claim("retained", storageClassName="local-keep"), pod("r", "retained", "echo x > /data/f"))
    wait_for(lambda: running(node, "r"), LOADED, "pod Running")
    name = get(node, "pvc", "retained")["spec"]["volumeName"]
    path = Path(get(node, "pv", name)["spec"]["hostPath"]["path"])
    delete_pod(node, "r")
    node.kubectl("delete", "pvc", "retained")
    wait_for(lambda: get(node, "pv", name)["status"]["phase"] == "Released", 30, "volume Released")
    assert (path / "f").read_text() == "x\n"
    row = node.kubectl("get", "pv", name).stdout.split("\n")[1].split()
    assert row[3:6] == ["Retain", "Released", "default/retained"]
    node.kubectl("delete", "pv", name)
    assert (path / "f").exists()                     # Retain: the data stays for the administrator


def test_admin_host_path_volume_and_statefulset_claims(node: PrivateNode) -> None:
    static_dir = node.work_dir / "static"
    volume = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "static-1"},
              "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                       "hostPath": {"path": str(static_dir), "type": "DirectoryOrCreate"}}}
    apply(node, volume, claim("manual", storageClassName=""), pod("static", "manual", "echo s > /data/s"))
    wait_for(lambda: running(node, "static"), LOADED, "pod on the static volume Running")
    assert get(node, "pvc", "manual")["spec"]["volumeName"] == "static-1"
    assert (static_dir / "s").read_text() == "s\n"
    delete_pod(node, "static")
    node.kubectl("delete", "pvc", "manual")
    wait_for(lambda: get(node, "pv", "static-1")["status"]["phase"] == "Released", 30, "static volume Released")
    node.kubectl("delete", "pv", "static-1")

    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": "default"},
           "spec": {"replicas": 2, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "terminationGracePeriodSeconds": 1, "containers": [{
                            "name": "app", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", "[ -f /data/id ] || hostname > /data/id; " + COMMAND[2]],
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "32Mi"}}}}]}}
    apply(node, sts)
    node.kubectl("rollout", "status", "sts/web", f"--timeout={LOADED}s")
    claims = {c["metadata"]["name"]: c for c in get(node, "pvc")["items"] if c["metadata"]["name"].startswith("data-")}
    assert sorted(claims) == ["data-web-0", "data-web-1"] and all(
        c["status"]["phase"] == "Bound" for c in claims.values())
    before = claims["data-web-1"]["spec"]["volumeName"]
    uid = get(node, "pod", "web-1")["metadata"]["uid"]
    node.kubectl("delete", "pod", "web-1")
    wait_for(lambda: (p := get(node, "pod", "web-1")) is not None and p["metadata"]["uid"] != uid
             and running(node, "web-1"), LOADED, "web-1 back")
    assert get(node, "pvc", "data-web-1")["spec"]["volumeName"] == before
    assert node.kubectl("exec", "web-1", "--", "cat", "/data/id").stdout == "web-1\n"
    node.kubectl("delete", "sts", "web")


def test_agent_refuses_volumes_outside_its_directory_or_of_another_node(node: PrivateNode, tmp_path: Path) -> None:
    base = base_dir(node)
    outside = node.work_dir / "outside"

    def local_path_volume(name: str, path: str, owner: str = NAME, finalizers: tuple[str, ...] = ()) -> dict[str, Any]:
        return {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": {"storage.shipmate.io/node": NAME},
                             "annotations": {"pv.kubernetes.io/provisioned-by": "shipmate.io/local-path"},
                             "finalizers": list(finalizers)},
                "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                         "persistentVolumeReclaimPolicy": "Delete", "storageClassName": "local-path",
                         "hostPath": {"path": path, "type": "DirectoryOrCreate"},
                         "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                             {"key": "kubernetes.io/hostname", "operator": "In", "values": [owner]}]}]}}}}

    target = tmp_path / "victim"
    target.mkdir()
    (target / "precious").write_text("keep me")
    os.symlink(target, base / "evil-link_default_x")
    apply(node, local_path_volume("evil-out", str(outside / "evil-out_default_x")),
          local_path_volume("evil-link", str(base / "evil-link_default_x"),
                            finalizers=("external-provisioner.volume.kubernetes.io/finalizer",)),
          local_path_volume("evil-node", str(base / "evil-node_default_x"), owner="another-node"))
    for name in ("evil-out", "evil-link"):
        wait_for(lambda: (get(node, "pv", name)["status"].get("reason") == "ProvisioningFailed"), 30,
                 f"{name} refused")
    assert "not directly under" in get(node, "pv", "evil-out")["status"]["message"]
    assert not outside.exists()
    assert "is a symlink" in get(node, "pv", "evil-link")["status"]["message"]
    status = get(node, "pv", "evil-node")["status"]
    assert status["phase"] == "Pending" and "reason" not in status       # ignored: not this node's
    assert not (base / "evil-node_default_x").exists()
    # Deleting them: the agent never follows the symlink to remove the target.
    for name in ("evil-out", "evil-link", "evil-node"):
        node.kubectl("delete", "pv", name, "--wait=false")
    wait_for(lambda: get(node, "pv", "evil-link")["status"].get("reason") == "VolumeFailedDelete", 30,
             "link removal refused")
    assert "symlink" in get(node, "pv", "evil-link")["status"]["message"]
    assert (target / "precious").read_text() == "keep me" and (base / "evil-link_default_x").is_symlink()
    node.kubectl("patch", "pv", "evil-link", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    wait_for(lambda: get(node, "pv", "evil-link") is None, 30, "evil-link gone")
    # A path with `..` never gets that far: the API refuses it.
    bad = local_path_volume("dotdot", f"{base}/../escape")
    result = node.kubectl("apply", "-f", "-", stdin=json.dumps(bad), check=False)
    assert "spec.hostPath.path: Invalid value" in result.stderr and "must not contain '..'" in result.stderr


def test_agent_waits_for_the_claim_to_be_bound(node: PrivateNode) -> None:
    """A pod placed on the node directly (spec.nodeName: no scheduler waits for its claim) does not start
    before its claim is bound: FailedMount with kubelet's words, then it runs once a volume binds."""
    placed = pod("placed", "unbound", "echo ok > /data/ok")
    placed["spec"]["nodeName"] = NAME
    apply(node, claim("unbound", storageClassName=""), placed)

    def failed_mount() -> str:
        events = node.kubectl("get", "events", "--field-selector", "involvedObject.name=placed,reason=FailedMount",
                              "-o", "jsonpath={.items[*].message}").stdout
        return events
    text = wait_for(failed_mount, 30, "FailedMount")
    assert ("Unable to attach or mount volumes: unmounted volumes=[data], unattached volumes=[data], failed to "
            "process volumes=[data]: error processing PVC default/unbound: PVC default/unbound has non-bound "
            'phase ("Pending") or empty pvc.Spec.VolumeName ("")') in text, text
    assert get(node, "pod", "placed")["status"].get("phase") == "Pending"
    static_dir = node.work_dir / "late-static"
    apply(node, {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "late-static"},
                 "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                          "persistentVolumeReclaimPolicy": "Retain",
                          "hostPath": {"path": str(static_dir), "type": "DirectoryOrCreate"}}})
    wait_for(lambda: running(node, "placed"), LOADED, "the pod runs once its claim is bound")
    assert (static_dir / "ok").read_text() == "ok\n"
    delete_pod(node, "placed")
    node.kubectl("delete", "pvc", "unbound")
    node.kubectl("delete", "pv", "late-static")
