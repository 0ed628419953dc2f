"""Static pods (file source) and mirror pods: pure parts, and the directory poller on a temp dir."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from agent.mirror_pods import mirror_for, mirror_pod, plan_mirrors
from agent.labels import CONFIG_SEEN, CONFIG_SOURCE
from agent.static_pods import (CONFIG_HASH, CONFIG_MIRROR, Change, ManifestError,
                               StaticPodSource, diff_pods, is_mirror, is_static, parse_manifest, static_pod,
                               static_pod_uid)

MANIFEST = """
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: app
    image: 127.0.0.1:5000/library/busybox:latest
    command: [sleep, "3600"]
"""
SEEN = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc)


def make(text: str = MANIFEST, node: str = "node-a", path: str = "/m/web.yaml") -> dict:
    return static_pod(parse_manifest(text, path), node, path, SEEN)


def test_static_pod_identity_as_kubelet() -> None:
    pod = make()
    meta = pod["metadata"]
    assert meta["name"] == "web-node-a" and meta["namespace"] == "default"
    assert meta["uid"] == static_pod_uid(parse_manifest(MANIFEST, "/m/web.yaml"), "node-a", "/m/web.yaml")
    assert len(meta["uid"]) == 32 and int(meta["uid"], 16) >= 0          # md5 hex
    assert meta["annotations"] == {CONFIG_HASH: meta["uid"], CONFIG_SOURCE: "file",
                                   CONFIG_SEEN: "2026-01-02T03:04:05.006000Z"}
    assert meta["labels"] == {"app": "web"}
    spec = pod["spec"]
    assert spec["nodeName"] == "node-a"
    assert {"operator": "Exists", "effect": "NoExecute"} in spec["tolerations"]
    assert spec["restartPolicy"] == "Always" and spec["terminationGracePeriodSeconds"] == 30
    assert spec["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["status"] == {"phase": "Pending"}
    assert is_static(pod) and not is_mirror(pod)


def test_uid_depends_on_content_node_and_path_only() -> None:
    assert make()["metadata"]["uid"] == make()["metadata"]["uid"]
    assert make(node="node-b")["metadata"]["uid"] != make()["metadata"]["uid"]
    assert make(path="/m/other.yaml")["metadata"]["uid"] != make()["metadata"]["uid"]
    edited = MANIFEST.replace('"3600"', '"3601"')
    assert make(edited)["metadata"]["uid"] != make()["metadata"]["uid"]
    reordered = json.dumps(parse_manifest(MANIFEST, "x"))          # same pod as JSON: same UID
    assert make(reordered)["metadata"]["uid"] == make()["metadata"]["uid"]


def test_namespace_and_uid_from_manifest_are_kept() -> None:
    text = MANIFEST.replace("  name: web\n", "  name: web\n  namespace: kube-system\n  uid: fixed-uid\n")
    pod = make(text)
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["metadata"]["uid"] == pod["metadata"]["annotations"][CONFIG_HASH] == "fixed-uid"


@pytest.mark.parametrize("text, message", [
    ("kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec: {}\n", "spec.containers"),
    ("kind: Deployment\napiVersion: apps/v1\nmetadata: {name: a}\n", "kind must be Pod"),
    ("kind: Pod\napiVersion: v1\nspec: {containers: [{name: a, image: b}]}\n", "metadata.name"),
    ("kind: Pod\napiVersion: v1\nmetadata: {name: a}\nspec: {containers: [{name: a}]}\n", "image are required"),
    (MANIFEST + "---\n" + MANIFEST, "exactly one pod"),
    ("{not: yaml: [", "not YAML"),
])
def test_bad_manifests_are_rejected_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(text, "/m/bad.yaml")


def test_diff_deletes_before_adding() -> None:
    a, b = make(), make(MANIFEST.replace("3600", "60"))
    changes = diff_pods({a["metadata"]["uid"]: a}, {b["metadata"]["uid"]: b})
    assert [(c.kind, c.pod["metadata"]["uid"]) for c in changes] == [
        ("DELETED", a["metadata"]["uid"]), ("ADDED", b["metadata"]["uid"])]


async def test_source_follows_the_directory(tmp_path) -> None:
    seen: list[Change] = []
    source = StaticPodSource(str(tmp_path), "node-a", seen.append)
    assert await source.scan() == [] and source.synced.is_set()          # empty (or missing) dir: no pods
    (tmp_path / "web.yaml").write_text(MANIFEST)
    (tmp_path / ".web.yaml.swp").write_text("garbage")                   # hidden files are ignored
    added = await source.scan()
    assert [c.kind for c in added] == ["ADDED"]
    uid = added[0].pod["metadata"]["uid"]
    assert await source.scan() == []                                     # unchanged: nothing, same seen
    (tmp_path / "web.yaml").write_text("{broken")                        # a broken edit keeps the pod
    assert await source.scan() == [] and uid in source.pods
    (tmp_path / "web.yaml").write_text(MANIFEST.replace("3600", "60"))
    edited = await source.scan()
    assert [c.kind for c in edited] == ["DELETED", "ADDED"] and edited[0].pod["metadata"]["uid"] == uid
    (tmp_path / "dup.json").write_text(json.dumps(parse_manifest(MANIFEST, "x")))   # same name: ignored
    assert await source.scan() == []
    (tmp_path / "web.yaml").unlink()
    changes = await source.scan()                                         # the duplicate now takes the name
    assert [c.kind for c in changes] == ["DELETED", "ADDED"]
    (tmp_path / "dup.json").unlink()
    assert [c.kind for c in await source.scan()] == ["DELETED"] and source.pods == {}


def test_mirror_pod_shape() -> None:
    static = make()
    mirror = mirror_pod(static, "node-a", "node-uid-1")
    meta = mirror["metadata"]
    assert "uid" not in meta and "status" not in mirror
    assert meta["name"] == "web-node-a"
    assert meta["annotations"][CONFIG_MIRROR] == static["metadata"]["uid"]
    assert meta["annotations"][CONFIG_SOURCE] == "file"
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": "node-a", "uid": "node-uid-1",
                                        "controller": True}]
    assert mirror["spec"] == static["spec"]
    assert is_mirror(mirror)


def api_mirror(static: dict, uid: str = "m-1", **meta) -> dict:
    mirror = mirror_pod(static, "node-a", "n")
    mirror["metadata"].update(uid=uid, **meta)
    return mirror


def test_plan_creates_missing_and_replaces_stale_mirrors() -> None:
    static = make()
    assert plan_mirrors([static], []).create == [static]
    current = api_mirror(static)
    plan = plan_mirrors([static], [current])
    assert plan.create == [] and plan.delete == []
    assert mirror_for(static, [current]) is current

    edited = make(MANIFEST.replace("3600", "60"))
    plan = plan_mirrors([edited], [current])
    assert plan.delete == [current] and plan.create == [edited]
    assert mirror_for(edited, [current]) is None

    deleting = api_mirror(static, deletionTimestamp="2026-01-01T00:00:00Z")
    plan = plan_mirrors([static], [deleting])
    assert plan.delete == [deleting] and plan.create == [static]


def test_plan_deletes_orphaned_mirrors_and_ignores_other_pods() -> None:
    static = make()
    orphan = api_mirror(static)
    regular = {"metadata": {"name": "web-node-a", "namespace": "other", "uid": "r"}, "spec": {}}
    plan = plan_mirrors([], [orphan, regular])
    assert plan.delete == [orphan] and plan.create == []
