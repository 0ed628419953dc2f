"""Volumes: mount computation, hostPath type checks, payloads and the atomic writer."""
from __future__ import annotations

import asyncio
import base64
import os
import socket

import pytest

from cri.gen import api_pb2

from agent.volumes import VolumeError, VolumePaths, container_mounts
from agent.volumes.atomic_writer import FileProjection, clean_payload, paths_to_remove, write_payload
from agent.volumes.hostpath import check_host_path
from agent.volumes.manager import memory_volume_size, volume_kind
from agent.volumes.projection import (config_map_payload, downward_api_payload, format_map,
                                      secret_payload)


# ---------------------------------------------------------------- container_mounts
def test_mounts_follow_volume_mounts_in_order() -> None:
    container = {"name": "app", "volumeMounts": [
        {"name": "data", "mountPath": "/data"},
        {"name": "data", "mountPath": "/logs", "subPath": "logs/app", "readOnly": True},
        {"name": "host", "mountPath": "/host", "mountPropagation": "HostToContainer"},
    ]}
    mounts = container_mounts(container, {"data": "/v/data", "host": "/srv"})
    assert [(m.container_path, m.host_path, m.readonly) for m in mounts] == [
        ("/data", "/v/data", False), ("/logs", "/v/data/logs/app", True), ("/host", "/srv", False)]
    assert mounts[2].propagation == api_pb2.PROPAGATION_HOST_TO_CONTAINER
    assert mounts[0].propagation == api_pb2.PROPAGATION_PRIVATE


def test_api_data_volumes_are_always_read_only() -> None:
    paths = VolumePaths({"cfg": "/v/cfg", "scratch": "/v/s"}, frozenset({"cfg"}))
    container = {"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                                 {"name": "scratch", "mountPath": "/s"}]}
    assert [m.readonly for m in container_mounts(container, paths)] == [True, False]


def test_no_volume_mounts_no_mounts() -> None:
    assert container_mounts({"name": "app"}, {}) == []


@pytest.mark.parametrize("mount,message", [
    ({"name": "missing", "mountPath": "/x"}, 'cannot find volume "missing" to mount into container "app"'),
    ({"name": "data", "mountPath": "/x", "subPath": "/abs"}, "error SubPath `/abs` must not be an absolute path"),
    ({"name": "data", "mountPath": "/x", "subPath": "a/../../b"}, "must not contain '..'"),
])
def test_bad_mounts_are_config_errors(mount: dict, message: str) -> None:
    with pytest.raises(VolumeError, match=message.replace("(", r"\(").replace("`", "`")):
        container_mounts({"name": "app", "volumeMounts": [mount]}, {"data": "/v/data"})


# ---------------------------------------------------------------- hostPath
def test_host_path_types(tmp_path) -> None:
    directory, regular = tmp_path / "d", tmp_path / "f"
    directory.mkdir()
    regular.write_text("x")
    check_host_path(str(directory), "Directory")
    check_host_path(str(regular), "File")
    check_host_path(str(tmp_path / "anything"), "")           # unset: no check
    with pytest.raises(VolumeError, match=f"hostPath type check failed: {regular} is not a directory, it's a File"):
        check_host_path(str(regular), "Directory")
    with pytest.raises(VolumeError, match=f"hostPath type check failed: {directory} is not a file, it's a Directory"):
        check_host_path(str(directory), "File")
    with pytest.raises(VolumeError, match=f"hostPath {tmp_path}/none doesn't exist"):
        check_host_path(str(tmp_path / "none"), "Directory")
    with pytest.raises(VolumeError, match="Weird is an invalid volume type"):
        check_host_path(str(directory), "Weird")


def test_host_path_or_create_creates(tmp_path) -> None:
    check_host_path(str(tmp_path / "new" / "dir"), "DirectoryOrCreate")
    assert (tmp_path / "new" / "dir").is_dir()
    check_host_path(str(tmp_path / "file"), "FileOrCreate")
    assert (tmp_path / "file").is_file() and (tmp_path / "file").stat().st_mode & 0o777 == 0o644
    with pytest.raises(VolumeError, match="is not a directory, it's a File"):
        check_host_path(str(tmp_path / "file"), "DirectoryOrCreate")


def test_host_path_socket(tmp_path) -> None:
    path = str(tmp_path / "s.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    try:
        check_host_path(path, "Socket")
        with pytest.raises(VolumeError, match="is not a socket file, it's a Directory"):
            check_host_path(str(tmp_path), "Socket")
    finally:
        server.close()


# ---------------------------------------------------------------- payloads
def test_config_map_payload_all_keys_with_default_mode() -> None:
    config_map = {"data": {"a.conf": "A"}, "binaryData": {"b.bin": base64.b64encode(b"\x00\x01").decode()}}
    payload = config_map_payload({"name": "cm"}, config_map)
    assert payload == {"a.conf": FileProjection(b"A", 0o644), "b.bin": FileProjection(b"\x00\x01", 0o644)}
    assert config_map_payload({"name": "cm", "defaultMode": 0o400}, config_map)["a.conf"].mode == 0o400


def test_config_map_payload_items() -> None:
    config_map = {"data": {"a": "A", "b": "B"}}
    source = {"name": "cm", "items": [{"key": "a", "path": "dir/a.txt", "mode": 0o600}, {"key": "b", "path": "b"}]}
    assert config_map_payload(source, config_map) == {"dir/a.txt": FileProjection(b"A", 0o600),
                                                      "b": FileProjection(b"B", 0o644)}
    with pytest.raises(VolumeError, match="configmap references non-existent config key: zz"):
        config_map_payload({"name": "cm", "items": [{"key": "zz", "path": "z"}]}, config_map)
    assert config_map_payload({"name": "cm", "optional": True, "items": [{"key": "zz", "path": "z"}]},
                              config_map) == {}
    assert config_map_payload({"name": "cm", "optional": True}, None) == {}


def test_secret_payload_decodes() -> None:
    secret = {"data": {"password": base64.b64encode(b"hunter2").decode()}}
    assert secret_payload({"secretName": "s"}, secret) == {"password": FileProjection(b"hunter2", 0o644)}
    with pytest.raises(VolumeError, match="references non-existent secret key: user"):
        secret_payload({"secretName": "s", "items": [{"key": "user", "path": "u"}]}, secret)


def test_downward_api_payload() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "labels": {"b": "2", "a": 'x"y'}}}
    source = {"items": [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                        {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                        {"path": "a", "fieldRef": {"fieldPath": "metadata.labels['a']"}}]}
    payload = downward_api_payload(source, pod)
    assert payload["name"].data == b"p"
    assert payload["labels"].data == b'a="x\\"y"\nb="2"'
    assert payload["a"].data == b'x"y'
    assert format_map({}) == ""


def test_downward_api_resource_fields() -> None:
    from agent.container_config import NodeResources
    pod = {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "app", "resources": {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}}]}}
    node = NodeResources(allocatable_cpu_milli=4000, allocatable_memory=8 << 30)
    source = {"items": [
        {"path": "mem", "resourceFieldRef": {"containerName": "app", "resource": "limits.memory", "divisor": "1Mi"}},
        {"path": "cpu", "resourceFieldRef": {"containerName": "app", "resource": "requests.cpu", "divisor": "1m"}},
        {"path": "cpu-limit", "resourceFieldRef": {"containerName": "app", "resource": "limits.cpu"}}]}
    payload = downward_api_payload(source, pod, node=node)
    assert (payload["mem"].data, payload["cpu"].data, payload["cpu-limit"].data) == (b"64", b"250", b"4")
    with pytest.raises(VolumeError, match="container other not found"):
        downward_api_payload({"items": [{"path": "x", "resourceFieldRef": {"containerName": "other",
                                                                           "resource": "limits.cpu"}}]}, pod)


# ---------------------------------------------------------------- atomic writer
def test_payload_paths_are_validated() -> None:
    for bad, message in [("/abs", "must be relative path"), ("a/../b", "must not contain '..'"),
                         ("..hidden", "must not start with '..'"), ("", "must not be empty")]:
        with pytest.raises(VolumeError, match=message):
            clean_payload({bad: FileProjection(b"", 0o644)})
    assert list(clean_payload({"a//b": FileProjection(b"", 0o644)})) == ["a/b"]


def test_paths_to_remove_keeps_parent_dirs_of_new_files() -> None:
    new = {"dir/kept": FileProjection(b"", 0o644), "top": FileProjection(b"", 0o644)}
    assert paths_to_remove({"dir", "dir/kept", "dir/gone", "old", "top"}, new) == {"dir/gone", "old"}


def test_write_payload_layout_and_update(tmp_path) -> None:
    target = str(tmp_path)
    assert write_payload(target, {"a": FileProjection(b"1", 0o644), "d/b": FileProjection(b"2", 0o600)})
    first = os.readlink(tmp_path / "..data")
    assert first.startswith("..") and (tmp_path / first).is_dir()
    assert os.readlink(tmp_path / "a") == "..data/a" and os.readlink(tmp_path / "d") == "..data/d"
    assert (tmp_path / "a").read_bytes() == b"1" and (tmp_path / "d" / "b").read_bytes() == b"2"
    assert (tmp_path / first / "d" / "b").stat().st_mode & 0o777 == 0o600
    # Same payload: nothing rewritten.
    assert not write_payload(target, {"a": FileProjection(b"1", 0o644), "d/b": FileProjection(b"2", 0o600)})
    assert os.readlink(tmp_path / "..data") == first
    # New content, one key dropped: new timestamped dir, old one and the stale link gone.
    assert write_payload(target, {"a": FileProjection(b"changed", 0o644)})
    second = os.readlink(tmp_path / "..data")
    assert second != first and not (tmp_path / first).exists()
    assert (tmp_path / "a").read_bytes() == b"changed"
    assert not os.path.lexists(tmp_path / "d")
    assert sorted(os.listdir(tmp_path)) == sorted(["..data", second, "a"])


# ---------------------------------------------------------------- manager helpers
def test_volume_kind_and_memory_size() -> None:
    assert volume_kind({"name": "x", "emptyDir": {}}) == "emptyDir"
    assert volume_kind({"name": "x"}) == "emptyDir"
    assert volume_kind({"name": "x", "configMap": {"name": "c"}}) == "configMap"
    memory = {"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}
    node = 1 << 30
    assert memory_volume_size(memory, {"spec": {"containers": [{"name": "a"}]}}, node) == 64 << 20
    limited = {"spec": {"containers": [{"name": "a", "resources": {"limits": {"memory": "100Mi"}}},
                                       {"name": "b", "resources": {"limits": {"memory": "28Mi"}}}]}}
    unsized = {"name": "m", "emptyDir": {"medium": "Memory"}}
    assert memory_volume_size(unsized, limited, node) == 128 << 20
    assert memory_volume_size({"name": "m", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}, limited,
                              node) == 128 << 20           # the smaller of the two
    assert memory_volume_size(unsized, {"spec": {"containers": [{"name": "a"}]}}, node) == node
    # PodLimits: a sidecar runs next to the containers; a pod-level limit stands for the containers' own
    with_sidecar = {"spec": {**limited["spec"], "initContainers": [
        {"name": "s", "restartPolicy": "Always", "resources": {"limits": {"memory": "64Mi"}}}]}}
    assert memory_volume_size(unsized, with_sidecar, node) == 192 << 20
    pod_level = {"spec": {"containers": [{"name": "a"}], "resources": {"limits": {"memory": "256Mi"}}}}
    assert memory_volume_size(unsized, pod_level, node) == 256 << 20


# ---------------------------------------------------------------- VolumeManager against a fake API
class FakeClient:
    def __init__(self, objects: dict[tuple[str, str, str], dict]):
        self.objects = objects
        self.gets = 0

    async def get(self, resource, name: str, namespace: str | None = None, subresource: str | None = None) -> dict:
        from shipmate.kubeclient import NotFound
        self.gets += 1
        key = (resource.plural, namespace or "", name)
        if key not in self.objects:
            raise NotFound(404, {"message": f'{resource.plural} "{name}" not found'})
        return self.objects[key]


def _pod(volumes: list[dict], uid: str = "uid-1") -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid, "labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": volumes}}


async def test_manager_sets_up_refreshes_and_cleans_up(tmp_path) -> None:
    from agent.volumes import VolumeManager
    client = FakeClient({("configmaps", "ns", "cm"): {"data": {"key": "v1"}}})
    bound: list[str] = []

    def fake_bind(fd: int, target: str) -> str:       # no mount in a unit test: what the fd is
        bound.append(target)
        return os.readlink(f"/proc/self/fd/{fd}")
    manager = VolumeManager(str(tmp_path), client, resync_period=0.05, sub_path_binder=fake_bind)
    host = tmp_path / "host"
    pod = _pod([{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "cm"}},
                {"name": "h", "hostPath": {"path": str(host), "type": "DirectoryOrCreate"}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels",
                                                            "fieldRef": {"fieldPath": "metadata.labels"}}]}}])
    paths = await manager.ensure(pod)
    volumes = tmp_path / "pods" / "uid-1" / "volumes"
    assert paths == {"scratch": str(volumes / "kubernetes.io~empty-dir" / "scratch"),
                     "cfg": str(volumes / "kubernetes.io~configmap" / "cfg"), "h": str(host),
                     "info": str(volumes / "kubernetes.io~downward-api" / "info")}
    assert paths.read_only == {"cfg", "info"}
    assert (volumes / "kubernetes.io~empty-dir" / "scratch").stat().st_mode & 0o777 == 0o777
    assert (volumes / "kubernetes.io~configmap" / "cfg" / "key").read_text() == "v1"
    assert (volumes / "kubernetes.io~downward-api" / "info" / "labels").read_text() == 'app="x"'
    assert host.is_dir()
    # A second sync does not go back to the API; the periodic refresh does.
    gets = client.gets
    assert await manager.ensure(pod) == paths and client.gets == gets
    client.objects[("configmaps", "ns", "cm")] = {"data": {"key": "v2"}}
    refresh = asyncio.create_task(manager.run())
    try:
        await wait_until(lambda: (volumes / "kubernetes.io~configmap" / "cfg" / "key").read_text() == "v2")
    finally:
        refresh.cancel()
    mounts = await manager.mounts_for(pod, {"name": "c", "volumeMounts": [
        {"name": "scratch", "mountPath": "/s", "subPath": "deep/er"}, {"name": "cfg", "mountPath": "/c"}]})
    assert [(m.host_path, m.readonly) for m in mounts] == [
        (str(volumes / "kubernetes.io~empty-dir" / "scratch" / "deep" / "er"), False),
        (str(volumes / "kubernetes.io~configmap" / "cfg"), True)]
    assert (volumes / "kubernetes.io~empty-dir" / "scratch" / "deep" / "er").is_dir()
    assert bound == [str(tmp_path / "pods" / "uid-1" / "volume-subpaths" / "scratch" / "c" / "0")]
    await manager.cleanup("uid-1")
    assert not (tmp_path / "pods" / "uid-1").exists()


async def test_manager_reports_missing_objects_like_kubelet(tmp_path) -> None:
    from agent.volumes import VolumeManager
    manager = VolumeManager(str(tmp_path), FakeClient({}))
    with pytest.raises(VolumeError, match='^MountVolume.SetUp failed for volume "cfg" : configmap "nope" not found$'):
        await manager.ensure(_pod([{"name": "cfg", "configMap": {"name": "nope"}}]))
    with pytest.raises(VolumeError) as failure:
        await manager.ensure(_pod([{"name": "cfg", "configMap": {"name": "nope"}}]))
    assert failure.value.retry_in == 2.0                     # 1 s doubling
    with pytest.raises(VolumeError, match='volume "s" : secret "gone" not found'):
        await manager.ensure(_pod([{"name": "s", "projected": {"sources": [{"secret": {"name": "gone"}}]}}]))
    with pytest.raises(VolumeError, match='volume "h" : hostPath /no/such/path doesn.t exist'):
        await manager.ensure(_pod([{"name": "h", "hostPath": {"path": "/no/such/path", "type": "Directory"}}]))
    with pytest.raises(VolumeError, match="volume type nfs is not supported"):
        await manager.ensure(_pod([{"name": "v", "nfs": {"server": "x", "path": "/"}}]))
    with pytest.raises(VolumeError, match=r"^Unable to attach or mount volumes: unmounted volumes=\[v\], unattached "
                                          r"volumes=\[v\], failed to process volumes=\[v\]: error processing PVC "
                                          r"ns/x: failed to fetch PVC ns/x from API server"):
        await manager.ensure(_pod([{"name": "v", "persistentVolumeClaim": {"claimName": "x"}}]))
    paths = await manager.ensure(_pod([{"name": "cfg", "configMap": {"name": "nope", "optional": True}}]))
    assert os.path.islink(os.path.join(paths["cfg"], "..data"))
    assert [name for name in os.listdir(paths["cfg"]) if not name.startswith("..")] == []


async def test_housekeeping_removes_pods_not_live(tmp_path) -> None:
    from agent.volumes import VolumeManager
    manager = VolumeManager(str(tmp_path), FakeClient({}))
    await manager.ensure(_pod([{"name": "a", "emptyDir": {}}], uid="live"))
    await manager.ensure(_pod([{"name": "a", "emptyDir": {}}], uid="dead"))
    manager.housekeep({"live"})
    await manager._housekeeping
    assert sorted(os.listdir(tmp_path / "pods")) == ["live"]


async def test_orphan_scan_runs_at_most_once_per_period(tmp_path) -> None:
    """The agent asks every 2 s; the directory scan (a thread hop) runs once per orphan_scan_period."""
    from agent.volumes import VolumeManager
    now = [0.0]
    manager = VolumeManager(str(tmp_path), FakeClient({}), clock=lambda: now[0], orphan_scan_period=30.0)
    manager.housekeep(set())
    await manager._housekeeping
    await manager.ensure(_pod([{"name": "a", "emptyDir": {}}], uid="dead"))
    now[0] = 29.0
    manager.housekeep(set())
    await asyncio.sleep(0)
    assert manager._housekeeping.done() and os.listdir(tmp_path / "pods") == ["dead"]
    now[0] = 30.0
    manager.housekeep(set())
    await manager._housekeeping
    assert os.listdir(tmp_path / "pods") == []


async def test_refresh_reads_each_object_once_per_pass(tmp_path) -> None:
    from agent.volumes import VolumeManager
    client = FakeClient({("configmaps", "ns", "cm"): {"data": {"key": "v1"}}})
    manager = VolumeManager(str(tmp_path), client, resync_period=0.01)
    for uid in ("a", "b"):
        await manager.ensure(_pod([{"name": "cfg", "configMap": {"name": "cm"}}], uid=uid))
    client.gets = 0
    manager._pass_cache = {}
    await manager._refresh_all()
    assert client.gets == 1


async def test_refresh_of_unchanged_data_leaves_the_disk_alone_until_the_verify_period(tmp_path, monkeypatch) -> None:
    """At idle a refresh pass is cheap: a payload equal to the one written goes nowhere near the disk (a
    thread hop and a read of every file per volume per pass, 11 a second at 110 pods); the disk is
    compared again once `verify_period` passed, and a changed object is written at once."""
    from agent.volumes import VolumeManager
    from agent.volumes import manager as manager_module
    client = FakeClient({("configmaps", "ns", "cm"): {"data": {"key": "v1"}}})
    now = [0.0]
    manager = VolumeManager(str(tmp_path), client, verify_period=60.0, clock=lambda: now[0])
    await manager.ensure(_pod([{"name": "cfg", "configMap": {"name": "cm"}}]))
    writes: list[str] = []
    real_write = manager_module.write_payload

    def counting_write(path, payload):
        writes.append(path)
        return real_write(path, payload)
    monkeypatch.setattr(manager_module, "write_payload", counting_write)
    key = tmp_path / "pods" / "uid-1" / "volumes" / "kubernetes.io~configmap" / "cfg" / "key"
    for now[0] in (10.0, 20.0, 50.0):
        await manager._refresh_all()
    assert writes == []
    os.unlink(os.path.realpath(key))            # something changed the files behind the agent's back
    now[0] = 61.0
    await manager._refresh_all()
    assert len(writes) == 1 and key.read_text() == "v1"
    client.objects[("configmaps", "ns", "cm")] = {"data": {"key": "v2"}}
    now[0] = 70.0
    await manager._refresh_all()
    assert len(writes) == 2 and key.read_text() == "v2"
    await manager.cleanup("uid-1")
    assert manager._written == {}


async def wait_until(condition, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


# ---------------------------------------------------------------- subPath preparation
def _fd_target(fd: int, target: str) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def test_sub_paths_are_created_and_confined(tmp_path) -> None:
    from agent.volumes.subpath import prepare_sub_paths
    volume = tmp_path / "vol"
    volume.mkdir()
    container = {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "a/b"}]}
    pod_dir = str(tmp_path / "pod")
    assert prepare_sub_paths(pod_dir, container, {"data": str(volume)}, {"data": "emptyDir"}, _fd_target) == {
        0: str(volume / "a" / "b")}
    assert (volume / "a" / "b").is_dir()
    os.symlink("/", volume / "escape")
    evil = {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d", "subPath": "escape"}]}
    with pytest.raises(VolumeError, match='^failed to prepare subPath for volumeMount "data" of container "app"$'):
        prepare_sub_paths(pod_dir, evil, {"data": str(volume)}, {"data": "emptyDir"}, _fd_target)
    missing = {"name": "app", "volumeMounts": [{"name": "cfg", "mountPath": "/c", "subPath": "nokey"}]}
    with pytest.raises(VolumeError, match='failed to prepare subPath for volumeMount "cfg" of container "app"'):
        prepare_sub_paths(pod_dir, missing, {"cfg": str(volume)}, {"cfg": "configMap"}, _fd_target)
