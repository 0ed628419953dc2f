"""Installs the CNI config and plugin executables on the node (the agent calls it at start).

`/opt/cni/bin/shipmate-cni` and `/opt/cni/bin/loopback` are the same small launcher: a script run
by this virtualenv's Python with `-I -S` (no site-packages: fast start) that enters
`netns.cni_forward`, with the agent's socket path baked in (the plugin must not parse JSON
before forwarding: that alone would double its start-up). containerd's CRI runs `loopback` for every sandbox besides our network.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
import sys
from pathlib import Path

from netns.cni_spec import DEFAULT_IPAM_DIR, DEFAULT_SOCKET_PATH, LOOPBACK_TYPE, PLUGIN_TYPE

log = logging.getLogger(__name__)

CONFLIST_NAME = "10-shipmate.conflist"
NETWORK_NAME = "shipmate"
BRIDGE_NAME = "shipmate0"
CNI_VERSION = "1.0.0"
PLUGIN_EXECUTABLES = (PLUGIN_TYPE, LOOPBACK_TYPE)


def render_conflist(pod_cidr: str, *, ipam_dir: str = DEFAULT_IPAM_DIR, mtu: int | None = None) -> str:
    """The network config; raises ValueError for a podCIDR that is not an IPv4 network."""
    subnet = ipaddress.IPv4Network(pod_cidr, strict=True)
    if subnet.num_addresses < 4:
        raise ValueError(f"podCIDR {pod_cidr} is too small for a gateway and pods")
    plugin: dict[str, object] = {
        "type": PLUGIN_TYPE,
        "bridge": BRIDGE_NAME,
        "subnet": str(subnet),
        "gateway": str(next(subnet.hosts())),
        "hairpinMode": True,
        "ipamDataDir": ipam_dir,
        # containerd then passes the pods' hostPorts as runtimeConfig.portMappings (netns/hostport.py).
        "capabilities": {"portMappings": True},
    }
    if mtu is not None:
        plugin["mtu"] = mtu
    conflist = {"cniVersion": CNI_VERSION, "name": NETWORK_NAME, "plugins": [plugin]}
    return json.dumps(conflist, indent=2) + "\n"


def render_launcher(python: str, package_root: str, socket_path: str) -> str:
    if not python.startswith("/") or any(c.isspace() for c in python):
        raise ValueError(f"interpreter path {python!r} cannot go on a #! line")
    return (
        f"#!{python} -IS\n"
        "# shipmate CNI plugin launcher, written by netns.install; do not edit.\n"
        "import sys\n"
        f"sys.path.insert(0, {package_root!r})\n"
        "from netns.cni_forward import main\n"
        f"sys.exit(main({socket_path!r}))\n"
    )


def default_route_mtu(proc_net_route: str = "/proc/net/route", sys_class_net: str = "/sys/class/net") -> int | None:
    """MTU of the interface carrying the default route: pod traffic leaves the node through it."""
    try:
        with open(proc_net_route, encoding="ascii") as f:
            rows = [line.split() for line in f.readlines()[1:]]
        iface = next(row[0] for row in rows if len(row) > 7 and row[1] == "00000000" and row[7] == "00000000")
        return int(Path(sys_class_net, iface, "mtu").read_text().strip())
    except (OSError, StopIteration, ValueError):
        return None


def _write_atomic(path: Path, content: str, mode: int) -> bool:
    """Write + rename in the same directory; unchanged files are left alone. True if written."""
    try:
        if path.read_text() == content and (path.stat().st_mode & 0o7777) == mode:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "w", encoding="utf-8") as f:
            f.write(content)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    return True


def install_cni(pod_cidr: str, bin_dir: str = "/opt/cni/bin", conf_dir: str = "/etc/cni/net.d", *,
                socket_path: str = DEFAULT_SOCKET_PATH, ipam_dir: str = DEFAULT_IPAM_DIR,
                mtu: int | None = None, python: str = sys.executable) -> None:
    """Idempotent: plugins first, then the conflist, so the runtime never sees a network whose
    plugin is missing. `mtu` defaults to the MTU of the node's default-route interface."""
    conflist = render_conflist(pod_cidr, ipam_dir=ipam_dir,
                               mtu=mtu if mtu is not None else default_route_mtu())
    package_root = str(Path(__file__).resolve().parent.parent)
    launcher = render_launcher(python, package_root, socket_path)
    os.makedirs(bin_dir, mode=0o755, exist_ok=True)
    os.makedirs(conf_dir, mode=0o755, exist_ok=True)
    for name in PLUGIN_EXECUTABLES:
        if _write_atomic(Path(bin_dir, name), launcher, 0o755):
            log.info("cni plugin installed path=%s", Path(bin_dir, name))
    if _write_atomic(Path(conf_dir, CONFLIST_NAME), conflist, 0o644):
        log.info("cni config written path=%s pod_cidr=%s", Path(conf_dir, CONFLIST_NAME), pod_cidr)
