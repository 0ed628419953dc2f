"""hack/cri_tool.py: telling why a pod's network namespace cannot be removed."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import cri_tool  # noqa: E402  (hack/ is scripts, not a package)

# mount id, parent id, major:minor, root, mount point, ...
BASE = "22 1 0:21 / /run rw,nosuid shared:5 - tmpfs tmpfs rw\n"
NETNS_BEFORE_DIR_MOUNT = "40 22 0:4 net:[4026532] /run/netns/cni-a rw shared:9 - nsfs nsfs rw\n"
DIR_MOUNT = "41 22 0:21 /netns /run/netns rw shared:10 - tmpfs tmpfs rw\n"
COPY_ON_TOP = "42 41 0:4 net:[4026532] /run/netns/cni-a rw shared:11 - nsfs nsfs rw\n"
NETNS_AFTER_DIR_MOUNT = "43 41 0:4 net:[4026533] /run/netns/cni-b rw shared:12 - nsfs nsfs rw\n"


def test_a_netns_mounted_before_its_directory_became_a_mount_point_is_hidden() -> None:
    mountinfo = BASE + NETNS_BEFORE_DIR_MOUNT + DIR_MOUNT + COPY_ON_TOP + NETNS_AFTER_DIR_MOUNT
    assert cri_tool.hidden_mounts("/run/netns/cni-a", mountinfo)


def test_a_netns_mounted_inside_the_directory_mount_is_not() -> None:
    mountinfo = BASE + DIR_MOUNT + NETNS_AFTER_DIR_MOUNT
    assert not cri_tool.hidden_mounts("/run/netns/cni-b", mountinfo)
    assert not cri_tool.hidden_mounts("/run/netns/cni-b", BASE + NETNS_AFTER_DIR_MOUNT.replace(" 41 ", " 22 "))
    assert not cri_tool.hidden_mounts("/run/netns/absent", mountinfo)
