"""`shipmate server` flags turned into one validated config before anything starts."""
from __future__ import annotations

import argparse
import ipaddress
import os
from dataclasses import dataclass


@dataclass(frozen=True)
class ServerConfig:
    bind_address: str
    port: int
    data_dir: str
    cluster_cidr: str
    node_cidr_mask_size: int
    service_cluster_ip_range: str
    admin_kubeconfig: str
    watch_history_size: int
    log_level: str

    @property
    def database_path(self) -> str:
        return os.path.join(self.data_dir, "state.db")


def parse_args(argv: list[str]) -> ServerConfig:
    parser = argparse.ArgumentParser(prog="shipmate server", description="Kubernetes-compatible API server")
    parser.add_argument("--bind-address", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=6443)
    parser.add_argument("--data-dir", default="/var/lib/shipmate/server")
    parser.add_argument("--cluster-cidr", default="10.244.0.0/16")
    parser.add_argument("--node-cidr-mask-size", type=int, default=24)
    parser.add_argument("--service-cluster-ip-range", default="10.96.0.0/12",
                        help="reserved for Service ClusterIP allocation (issue 4)")
    parser.add_argument("--admin-kubeconfig", default="/etc/shipmate/admin.kubeconfig")
    parser.add_argument("--watch-history-size", type=int, default=10000,
                        help="writes kept for watch resumption; older resourceVersions get 410 Expired")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    for flag, value in (("--cluster-cidr", args.cluster_cidr),
                        ("--service-cluster-ip-range", args.service_cluster_ip_range)):
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            parser.error(f"{flag}: {exc}")
    if not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    if args.watch_history_size < 1:
        parser.error("--watch-history-size must be at least 1")
    cluster_prefix = ipaddress.ip_network(args.cluster_cidr).prefixlen
    if not cluster_prefix <= args.node_cidr_mask_size <= 30:
        parser.error(f"--node-cidr-mask-size must be between {cluster_prefix} and 30")
    return ServerConfig(args.bind_address, args.port, args.data_dir, args.cluster_cidr, args.node_cidr_mask_size,
                        args.service_cluster_ip_range, args.admin_kubeconfig, args.watch_history_size,
                        args.log_level.upper())
