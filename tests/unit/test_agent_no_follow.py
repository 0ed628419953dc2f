"""The agent's no-follow file access: paths a container can change (subPaths, termination message
files) are opened beneath a trusted directory without following symlinks; the fd opened is the
file used."""
from __future__ import annotations

import errno
import os

import pytest

from cri.gen import api_pb2

from agent.pod_status import limit_termination_messages
from agent.termination_message import read_message_file, termination_message
from agent.volumes import VolumeError, safe_path, subpath


@pytest.fixture(params=["openat2", "component-walk"])
def resolver(request, monkeypatch) -> str:
    """Both ways of resolving: openat2 (this kernel) and the openat(O_NOFOLLOW) walk of older ones."""
    monkeypatch.setattr(safe_path, "_openat2_missing", request.param == "component-walk")
    return request.param


@pytest.fixture
def volume(tmp_path):
    """A volume with an inner file and directory, and a secret outside it."""
    root = tmp_path / "volume"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "file").write_text("inner")
    (tmp_path / "secret").write_text("host secret")
    os.symlink(tmp_path / "secret", root / "to-secret")
    os.symlink(tmp_path, root / "to-host-dir")
    os.symlink("dir", root / "inner-link")
    return root


def _open(root, relative: str, flags: int = os.O_RDONLY) -> str:
    root_fd = safe_path.open_root(str(root))
    try:
        fd = safe_path.open_beneath(root_fd, relative, flags)
    finally:
        os.close(root_fd)
    try:
        return os.read(fd, 100).decode()
    finally:
        os.close(fd)


def test_inner_files_open(volume, resolver) -> None:
    assert _open(volume, "dir/file") == "inner"
    assert _open(volume, "./dir//file") == "inner"


@pytest.mark.parametrize("relative", ["to-secret", "to-host-dir/secret", "inner-link/file", "../secret",
                                      "dir/../../secret"])
def test_symlinks_and_dotdot_are_refused(volume, resolver, relative: str) -> None:
    with pytest.raises(OSError) as refused:
        _open(volume, relative)
    assert refused.value.errno in (errno.ELOOP, errno.EXDEV)


def test_o_path_of_a_trailing_symlink_is_refused_too(volume, resolver) -> None:
    root_fd = safe_path.open_root(str(volume))
    try:
        with pytest.raises(OSError) as refused:
            safe_path.open_beneath(root_fd, "to-secret", os.O_PATH)
    finally:
        os.close(root_fd)
    assert refused.value.errno == errno.ELOOP


def test_make_dirs_never_goes_through_a_symlink(volume, tmp_path, resolver) -> None:
    root_fd = safe_path.open_root(str(volume))
    try:
        safe_path.make_dirs_beneath(root_fd, "new/deeper", 0o770)
        with pytest.raises(OSError):
            safe_path.make_dirs_beneath(root_fd, "to-host-dir/planted", 0o770)
    finally:
        os.close(root_fd)
    assert (volume / "new" / "deeper").is_dir() and (volume / "new" / "deeper").stat().st_mode & 0o777 == 0o770
    assert not (tmp_path / "planted").exists()


# ---------------------------------------------------------------- subPath
def _bind(fd: int, target: str) -> str:
    return os.readlink(safe_path.fd_path(fd))


def _mount(sub_path: str) -> dict:
    return {"name": "app", "volumeMounts": [{"name": "data", "mountPath": "/d"},
                                            {"name": "data", "mountPath": "/s", "subPath": sub_path}]}


def test_sub_path_binds_what_it_checked(volume, tmp_path, resolver) -> None:
    bound = subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount("dir"), {"data": str(volume)},
                                      {"data": "emptyDir"}, _bind)
    assert bound == {1: str(volume / "dir")}
    # A symlink that stays inside the volume is resolved once, then opened without following.
    assert subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount("inner-link"), {"data": str(volume)},
                                     {"data": "emptyDir"}, _bind) == {1: str(volume / "dir")}


@pytest.mark.parametrize("sub_path", ["to-host-dir", "to-secret", "to-host-dir/secret", "inner-link/../../secret"])
def test_escaping_sub_path_is_refused_with_kubelets_words(volume, tmp_path, resolver, sub_path: str) -> None:
    binds: list[str] = []
    with pytest.raises(VolumeError) as refused:
        subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount(sub_path), {"data": str(volume)},
                                  {"data": "emptyDir"}, lambda fd, target: binds.append(target) or target)
    assert str(refused.value) == 'failed to prepare subPath for volumeMount "data" of container "app"'
    assert binds == []
    assert str(tmp_path) not in str(refused.value)          # no host path in what the user sees


def test_symlink_swapped_in_after_the_check_is_not_followed(volume, tmp_path, resolver, monkeypatch) -> None:
    """The race of CVE-2017-1002101: the subPath is a directory when checked, a symlink to the host
    when opened. The open refuses it, so nothing is bound."""
    check = subpath.resolve_sub_path

    def check_then_swap(root: str, sub_path: str) -> tuple[str, str]:
        checked = check(root, sub_path)
        os.rename(volume / "dir", volume / "dir.old")
        os.symlink(tmp_path, volume / "dir")
        return checked
    monkeypatch.setattr(subpath, "resolve_sub_path", check_then_swap)
    binds: list[str] = []
    with pytest.raises(VolumeError, match="failed to prepare subPath"):
        subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount("dir"), {"data": str(volume)}, {"data": "emptyDir"},
                                  lambda fd, target: binds.append(target) or target)
    assert binds == []


def test_missing_sub_path_is_created_only_for_emptydir_and_hostpath(volume, tmp_path, resolver) -> None:
    bound = subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount("made/here"), {"data": str(volume)},
                                      {"data": "emptyDir"}, _bind)
    assert bound == {1: str(volume / "made" / "here")} and (volume / "made" / "here").is_dir()
    with pytest.raises(VolumeError):
        subpath.prepare_sub_paths(str(tmp_path / "pod"), _mount("absent"), {"data": str(volume)},
                                  {"data": "configMap"}, _bind)


def test_bind_target_mirrors_the_source_kind(volume, tmp_path, resolver) -> None:
    pod = tmp_path / "pod"
    subpath.prepare_sub_paths(str(pod), _mount("dir/file"), {"data": str(volume)}, {"data": "emptyDir"}, _bind)
    subpath.prepare_sub_paths(str(pod), {"name": "other", "volumeMounts": [
        {"name": "data", "mountPath": "/s", "subPath": "dir"}]}, {"data": str(volume)}, {"data": "emptyDir"}, _bind)
    assert (pod / "volume-subpaths" / "data" / "app" / "1").is_file()
    assert (pod / "volume-subpaths" / "data" / "other" / "0").is_dir()


# ---------------------------------------------------------------- termination messages
def _status(host_path: str, policy: str = "File", exit_code: int = 1, log_path: str = "") -> api_pb2.ContainerStatus:
    return api_pb2.ContainerStatus(
        exit_code=exit_code, log_path=log_path,
        annotations={"io.kubernetes.container.terminationMessagePath": "/dev/termination-log",
                     "io.kubernetes.container.terminationMessagePolicy": policy},
        mounts=[api_pb2.Mount(container_path="/dev/termination-log", host_path=host_path)])


def test_message_file_swapped_for_a_symlink_gives_no_host_content(volume, tmp_path, resolver) -> None:
    message = termination_message(_status(str(volume / "to-secret")), str(tmp_path))
    assert "host secret" not in message and message.startswith("Error on reading termination log")
    assert termination_message(_status(str(volume / "to-host-dir" / "secret")), str(tmp_path)).startswith("Error")
    assert termination_message(_status(str(volume / "dir" / "file")), str(tmp_path)) == "inner"
    assert (tmp_path / "secret").read_text() == "host secret"
    # Outside the agent's root nothing may be a symlink either (a hostPath file).
    with pytest.raises(OSError):
        read_message_file(str(volume / "to-secret"), str(tmp_path / "elsewhere"))


def test_message_fifo_does_not_block_and_is_refused(tmp_path, resolver) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert termination_message(_status(str(tmp_path / "fifo")), str(tmp_path)).endswith("not a regular file")


def test_message_keeps_the_last_4096_bytes(tmp_path, resolver) -> None:
    (tmp_path / "msg").write_bytes(b"x" * 5000 + b"the end")
    message = termination_message(_status(str(tmp_path / "msg")), str(tmp_path))
    assert len(message) == 4096 and message.endswith("the end")


def test_a_pods_messages_share_12_kib() -> None:
    statuses = [{"state": {"terminated": {"message": "a" * 4096}},
                 "lastState": {"terminated": {"message": "b" * 4096}}} for _ in range(4)]
    statuses.append({"state": {"running": {}}, "lastState": {}})
    limit_termination_messages(statuses)
    share = 12 * 1024 // 5
    assert all(len(s["state"]["terminated"]["message"]) == share for s in statuses[:4])
    assert all(len(s["lastState"]["terminated"]["message"]) == share for s in statuses[:4])
    small = [{"state": {"terminated": {"message": "ok"}}, "lastState": {}}]
    limit_termination_messages(small)
    assert small[0]["state"]["terminated"]["message"] == "ok"
