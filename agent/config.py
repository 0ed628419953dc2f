"""`shipmate agent` flags → one validated AgentConfig before anything starts."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
from dataclasses import dataclass

import psutil

DEFAULT_SERVER = "http://127.0.0.1:6443"
DEFAULT_RUNTIME_ENDPOINT = "unix:///run/containerd/containerd.sock"
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


@dataclass(frozen=True)
class AgentConfig:
    server: str | None
    kubeconfig: str | None
    node_name: str
    node_ip: str
    container_runtime_endpoint: str
    root_dir: str
    cni_bin_dir: str
    cni_conf_dir: str
    cni_socket: str
    ipam_dir: str
    pod_log_dir: str
    max_pods: int
    log_level: int


def node_name_or_default(flag: str | None) -> str:
    """The node's name: the flag, else the hostname, lower-cased as Kubernetes names must be."""
    return (flag or socket.gethostname()).lower()

def default_route_interface(proc_net_route: str = "/proc/net/route") -> str | None:
    try:
        with open(proc_net_route) as handle:
            for line in handle.read().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 2 and fields[1] == "00000000":
                    return fields[0]
    except OSError:
        return None
    return None


def default_node_ip() -> str:
    """The IPv4 address of the default route's interface (127.0.0.1 when there is none)."""
    interface = default_route_interface()
    for address in psutil.net_if_addrs().get(interface or "", []):
        if address.family == socket.AF_INET:
            return address.address
    return "127.0.0.1"


def _log_level(value: str) -> int:
    if value.isdigit():   # klog-style -v=N: 0-1 info, 2+ debug
        return logging.DEBUG if int(value) >= 2 else logging.INFO
    if value.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"log level must be one of {', '.join(LOG_LEVELS)} or a number")
    return LOG_LEVELS[value.lower()]


def parse_args(argv: list[str]) -> AgentConfig:
    parser = argparse.ArgumentParser(prog="shipmate agent", description="the shipmate node agent")
    parser.add_argument("--server", default=None, help=f"API server URL (default {DEFAULT_SERVER}; overrides the kubeconfig's)")
    parser.add_argument("--kubeconfig", default=None, help="kubeconfig with the server and credentials")
    parser.add_argument("--node-name", default=None, help="node name (default: the hostname)")
    parser.add_argument("--node-ip", default=None, help="node InternalIP (default: the default route's address)")
    parser.add_argument("--container-runtime-endpoint", default=DEFAULT_RUNTIME_ENDPOINT)
    parser.add_argument("--root-dir", default="/var/lib/shipmate/agent")
    parser.add_argument("--cni-bin-dir", default="/opt/cni/bin")
    parser.add_argument("--cni-conf-dir", default="/etc/cni/net.d")
    parser.add_argument("--cni-socket", default="/run/shipmate/cni.sock")
    parser.add_argument("--ipam-dir", default="/var/lib/shipmate/ipam")
    parser.add_argument("--pod-log-dir", default="/var/log/pods")
    parser.add_argument("--max-pods", type=int, default=110)
    parser.add_argument("-v", "--log-level", type=_log_level, default=logging.INFO,
                        help="debug, info, warning, error, or a klog-style number")
    args = parser.parse_args(argv)

    node_name = node_name_or_default(args.node_name)
    node_ip = args.node_ip or default_node_ip()
    try:
        ipaddress.ip_address(node_ip)
    except ValueError:
        parser.error(f"--node-ip {node_ip!r} is not an IP address")
    if args.max_pods < 1:
        parser.error("--max-pods must be at least 1")
    server = args.server or (None if args.kubeconfig else DEFAULT_SERVER)
    return AgentConfig(server=server, kubeconfig=args.kubeconfig, node_name=node_name, node_ip=node_ip,
                       container_runtime_endpoint=args.container_runtime_endpoint, root_dir=args.root_dir,
                       cni_bin_dir=args.cni_bin_dir, cni_conf_dir=args.cni_conf_dir, cni_socket=args.cni_socket,
                       ipam_dir=args.ipam_dir, pod_log_dir=args.pod_log_dir, max_pods=args.max_pods,
                       log_level=args.log_level)
