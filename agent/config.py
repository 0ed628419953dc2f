"""`shipmate agent` flags → one validated AgentConfig before anything starts."""
from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import socket
from dataclasses import dataclass, field


from agent.node_pressure import DEFAULT_EVICTION_HARD, parse_eviction_hard
from shipmate import bootstrap_token
from shipmate.durations import parse_go_duration
from shipmate.hostnet import default_route_address
from shipmate.kubeclient import parse_servers
from shipmate.quantity import QuantityError, parse_quantity

DEFAULT_SERVER = "https://127.0.0.1:6443"
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
    # kube-proxy and cluster DNS roles (docs/design.md "Proxy", "Agent: cluster DNS")
    cluster_cidr: str = "10.244.0.0/16"
    cluster_dns: str = "10.96.0.10"       # the kube-dns Service (shipmate.addons); pods' nameserver
    cluster_domain: str = "cluster.local"
    serve_cluster_dns: bool = False        # the agent itself answers on cluster_dns (clusters without the addon)
    masquerade_all: bool = False
    iptables_min_sync_period: float = 1.0
    iptables_sync_period: float = 30.0
    cleanup_iptables: bool = False
    # "iptables", "nftables" or "" (iptables), as kube-proxy's --proxy-mode
    proxy_mode: str = ""
    # NetworkPolicy enforcement and hostPorts (docs/design.md "Network policies, hostPorts, LoadBalancers")
    network_policy: bool = True
    # static pods and image GC (docs/design.md "Agent: static pods, crash-safety and node health")
    pod_manifest_path: str = "/etc/shipmate/manifests"
    image_gc_high_threshold: int = 85
    image_gc_low_threshold: int = 80
    minimum_image_ttl_duration: float = 120.0
    eviction_hard: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_EVICTION_HARD))
    # node server, container log rotation (docs/design.md "Agent: node server, logs and exec")
    node_server_port: int = 10250
    streaming_connection_idle_timeout: float = 4 * 3600.0    # port-forward connections (kubelet's flag)
    container_log_max_size: int = 10 * 1024 * 1024
    container_log_max_files: int = 5
    # CRI call deadline (kubelet's --runtime-request-timeout; docs/benchmarks.md "Density")
    runtime_request_timeout: float = 120.0
    # periodic pod resync (kubelet's --sync-frequency, 1m there; a safety net here: agent/pod_workers.py)
    sync_frequency: float = 300.0
    # joining the cluster (docs/design.md "Security: agent join and certificate rotation")
    token: str | None = None
    ca_cert_hash: str | None = None
    ca_file: str | None = None
    # the shipmate.io/local-path provisioner's directories on this node (docs/storage.md)
    local_path_dir: str = "/var/lib/shipmate/storage"


def node_name_or_default(flag: str | None) -> str:
    """The node's name: the flag, else the hostname, lower-cased as Kubernetes names must be."""
    return (flag or socket.gethostname()).lower()

def _log_level(value: str) -> int:
    if value.isdigit():   # klog-style -v=N: 0-1 info, 2+ debug
        return logging.DEBUG if int(value) >= 2 else logging.INFO
    if value.lower() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(f"log level must be one of {', '.join(LOG_LEVELS)} or a number")
    return LOG_LEVELS[value.lower()]


def _duration(value: str) -> float:
    """A Go duration ("2m", "1h30m", "90s", "500ms") in seconds; negative ones are refused."""
    try:
        seconds = parse_go_duration(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value!r}")
    return seconds


def _byte_size(value: str) -> int:
    """A size as a resource quantity ("10Mi", "500Ki", "1G") in bytes."""
    try:
        size = parse_quantity(value).int_value()
    except QuantityError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if size <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive size")
    return size


def parse_args(argv: list[str]) -> AgentConfig:
    parser = argparse.ArgumentParser(prog="shipmate agent", description="the shipmate node agent")
    parser.add_argument("--server", default=None,
                        help=f"API server URL, or several comma-separated for failover (default {DEFAULT_SERVER}; "
                             "overrides the kubeconfig's)")
    parser.add_argument("--token", default=None, help="bootstrap token <id>.<secret> to join the cluster with "
                        "(not needed once <root-dir>/kubelet.kubeconfig holds a valid certificate)")
    parser.add_argument("--ca-cert-hash", default=None, metavar="sha256:HEX",
                        help="pin the cluster CA served at /cacerts to this SubjectPublicKeyInfo hash (kubeadm's)")
    parser.add_argument("--ca-file", default=None, help="the cluster CA certificate (PEM) to trust")
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
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16",
                        help="pod network; service traffic from outside it is masqueraded")
    parser.add_argument("--cluster-dns", default="10.96.0.10",
                        help="the cluster DNS address ClusterFirst pods get as nameserver (the kubelet's clusterDNS: "
                             "the kube-dns Service that `shipmate addons apply` creates; empty: pods get the host's "
                             "resolv.conf)")
    parser.add_argument("--serve-cluster-dns", action="store_true",
                        help="also serve cluster DNS in the agent on a local link with the --cluster-dns address "
                             "(for clusters without the DNS addon; the address must not be a Service's)")
    parser.add_argument("--cluster-domain", default="cluster.local")
    parser.add_argument("--masquerade-all", action="store_true",
                        help="SNAT all traffic sent to service cluster IPs (as kube-proxy's flag)")
    parser.add_argument("--iptables-min-sync-period", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument("--iptables-sync-period", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--cleanup-iptables", action="store_true",
                        help="remove the proxy's iptables chains and rules and its nftables table, then exit")
    parser.add_argument("--proxy-mode", choices=("", "iptables", "nftables"), default="",
                        help="how services are programmed (default: nftables where the host's iptables is "
                             "iptables-nft and nft is installed, else iptables)")
    parser.add_argument("--disable-network-policy", action="store_true",
                        help="do not enforce NetworkPolicies on this node (as k3s's flag)")
    parser.add_argument("--eviction-hard", default=None, metavar="SIGNAL<QUANTITY,...",
                        help="node pressure thresholds, e.g. memory.available<100Mi,nodefs.available<10%% "
                             "(default: kubelet's)")
    parser.add_argument("--pod-manifest-path", default="/etc/shipmate/manifests",
                        help="directory of static pod manifests (one pod per file, YAML or JSON)")
    parser.add_argument("--image-gc-high-threshold", type=int, default=85, metavar="PERCENT",
                        help="disk usage above which unused images are removed")
    parser.add_argument("--image-gc-low-threshold", type=int, default=80, metavar="PERCENT",
                        help="disk usage image garbage collection frees down to")
    parser.add_argument("--minimum-image-ttl-duration", type=_duration, default=120.0, metavar="DURATION",
                        help="minimum age of an unused image before it is garbage collected (e.g. 2m, 90s)")
    parser.add_argument("--node-server-port", type=int, default=10250,
                        help="HTTPS port of the node server (logs, exec, attach, healthz, metrics)")
    parser.add_argument("--streaming-connection-idle-timeout", type=_duration, default=4 * 3600.0,
                        metavar="DURATION", help="a port-forward connection with no traffic this long is closed "
                                                 "(e.g. 4h, 5m)")
    parser.add_argument("--container-log-max-size", type=_byte_size, default=10 * 1024 * 1024, metavar="SIZE",
                        help="size (e.g. 10Mi) at which a container's log is rotated")
    parser.add_argument("--container-log-max-files", type=int, default=5,
                        help="most log files kept per container, the current one included (at least 2)")
    parser.add_argument("--runtime-request-timeout", type=_duration, default=120.0, metavar="DURATION",
                        help="deadline of each CRI call except pulls and long-running ones (kubelet's, 2m)")
    parser.add_argument("--sync-frequency", type=_duration, default=300.0, metavar="DURATION",
                        help="how often each pod is synced without a change (kubelet's flag; 5m here, as runtime "
                             "events, the 1 s relist and API changes sync a pod when something changes)")
    parser.add_argument("--local-path-dir", default=None, metavar="DIR",
                        help="where volumes of the local-path StorageClass live on this node, one directory each "
                             "(default: storage/ beside --root-dir, /var/lib/shipmate/storage)")
    args = parser.parse_args(argv)

    node_name = node_name_or_default(args.node_name)
    node_ip = args.node_ip or default_route_address()
    try:
        ipaddress.ip_address(node_ip)
    except ValueError:
        parser.error(f"--node-ip {node_ip!r} is not an IP address")
    if args.max_pods < 1:
        parser.error("--max-pods must be at least 1")
    try:
        cluster_cidr = str(ipaddress.IPv4Network(args.cluster_cidr))
    except ValueError:
        parser.error(f"--cluster-cidr {args.cluster_cidr!r} is not an IPv4 network")
    if args.cluster_dns:
        try:
            ipaddress.IPv4Address(args.cluster_dns)
        except ValueError:
            parser.error(f"--cluster-dns {args.cluster_dns!r} is not an IPv4 address")
    if args.iptables_min_sync_period < 0 or args.iptables_sync_period <= 0:
        parser.error("--iptables-min-sync-period must be >= 0 and --iptables-sync-period > 0")
    if not 0 <= args.image_gc_low_threshold <= args.image_gc_high_threshold <= 100:
        parser.error("need 0 <= --image-gc-low-threshold <= --image-gc-high-threshold <= 100")
    try:
        eviction_hard = (parse_eviction_hard(args.eviction_hard) if args.eviction_hard is not None
                         else dict(DEFAULT_EVICTION_HARD))
    except ValueError as error:
        parser.error(f"--eviction-hard: {error}")
    if not 0 < args.node_server_port < 65536:
        parser.error("--node-server-port must be a port number")
    if args.runtime_request_timeout <= 0:
        parser.error("--runtime-request-timeout must be positive")
    if args.container_log_max_files < 2:
        parser.error("--container-log-max-files must be at least 2")
    server = args.server or (None if args.kubeconfig else DEFAULT_SERVER)
    if server:
        try:
            parse_servers(server)
        except ValueError as error:
            parser.error(f"--server: {error}")
    if args.token is not None and bootstrap_token.parse(args.token) is None:
        parser.error("--token must look like abcdef.0123456789abcdef (a bootstrap token)")
    if args.ca_cert_hash is not None and not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", args.ca_cert_hash):
        parser.error("--ca-cert-hash must be sha256:<64 hex digits>")
    local_path_dir = args.local_path_dir or os.path.join(os.path.dirname(os.path.normpath(args.root_dir)), "storage")
    if not os.path.isabs(local_path_dir):
        parser.error("--local-path-dir must be an absolute path")
    if args.token and args.kubeconfig:
        parser.error("--token joins and writes <root-dir>/kubelet.kubeconfig; it cannot be used with --kubeconfig")
    return AgentConfig(server=server, kubeconfig=args.kubeconfig, node_name=node_name, node_ip=node_ip,
                       container_runtime_endpoint=args.container_runtime_endpoint, root_dir=args.root_dir,
                       cni_bin_dir=args.cni_bin_dir, cni_conf_dir=args.cni_conf_dir, cni_socket=args.cni_socket,
                       ipam_dir=args.ipam_dir, pod_log_dir=args.pod_log_dir, max_pods=args.max_pods,
                       log_level=args.log_level, cluster_cidr=cluster_cidr, cluster_dns=args.cluster_dns,
                       serve_cluster_dns=args.serve_cluster_dns and bool(args.cluster_dns),
                       cluster_domain=args.cluster_domain.strip(".").lower(), masquerade_all=args.masquerade_all,
                       iptables_min_sync_period=args.iptables_min_sync_period,
                       iptables_sync_period=args.iptables_sync_period, cleanup_iptables=args.cleanup_iptables,
                       proxy_mode=args.proxy_mode,
                       network_policy=not args.disable_network_policy,
                       pod_manifest_path=args.pod_manifest_path,
                       image_gc_high_threshold=args.image_gc_high_threshold,
                       image_gc_low_threshold=args.image_gc_low_threshold,
                       minimum_image_ttl_duration=args.minimum_image_ttl_duration, eviction_hard=eviction_hard,
                       node_server_port=args.node_server_port,
                       streaming_connection_idle_timeout=args.streaming_connection_idle_timeout,
                       container_log_max_size=args.container_log_max_size,
                       container_log_max_files=args.container_log_max_files,
                       runtime_request_timeout=args.runtime_request_timeout, sync_frequency=args.sync_frequency,
                       token=args.token, ca_cert_hash=args.ca_cert_hash, ca_file=args.ca_file,
                       local_path_dir=os.path.normpath(local_path_dir))
