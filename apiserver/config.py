"""`shipmate server` flags turned into one validated config before anything starts."""
from __future__ import annotations

import argparse
import ipaddress
import os
import re
from dataclasses import dataclass

from apiserver.bounds import MAX_OPEN_CONNECTIONS
from apiserver.podsecurity.labels import parse_default
from apiserver.allocation.service_allocation import parse_port_range
from shipmate.durations import parse_go_duration
from shipmate.hostnet import default_route_address


def _duration(text: str) -> float:
    try:
        seconds = parse_go_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return seconds


_DNS_LABEL = re.compile(r"^(\*|[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)$")


def _valid_san(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        pass
    labels = value.lower().split(".")
    return len(value) <= 253 and all(_DNS_LABEL.match(label) for label in labels) and "*" not in labels[1:]


@dataclass(frozen=True)
class ServerConfig:
    bind_address: str
    port: int
    data_dir: str
    cluster_cidr: str
    node_cidr_mask_size: int
    service_cluster_ip_range: str
    service_node_port_range: tuple[int, int]
    advertise_address: str
    admin_kubeconfig: str
    watch_history_size: int
    log_level: str
    node_monitor_period: float = 5.0
    node_monitor_grace_period: float = 40.0
    pod_eviction_timeout: float = 300.0
    datastore_endpoint: str = ""  # empty: SQLite at database_path
    datastore_cafile: str = ""
    datastore_certfile: str = ""
    datastore_keyfile: str = ""
    snapshot_path: str = ""  # --snapshot: write a copy of the SQLite store and exit
    restore_path: str = ""  # --restore: replace the SQLite store with a snapshot and exit
    tls_sans: tuple[str, ...] = ()  # --tls-san: more DNS names / IPs for the serving certificate
    token_auth_file: str = ""  # --token-auth-file: static bearer tokens (upstream CSV)
    allow_service_external_ips: bool = False  # --allow-service-external-ips (CVE-2020-8554: off by default)
    cluster_signing_duration: float = 8760 * 3600.0  # longest certificate the CSR signer issues
    pod_security_default: str = ""  # --pod-security-default: enforce=baseline,warn=restricted (empty: privileged)
    pod_security_exempt_namespaces: tuple[str, ...] = ()  # namespaces Pod Security admission skips
    max_requests_inflight: int = 400  # non-mutating requests served at once (0: no limit)
    max_mutating_requests_inflight: int = 200  # mutating requests served at once (0: no limit)
    max_open_connections: int = MAX_OPEN_CONNECTIONS  # open client connections (0: no limit)
    # Service account tokens: issuers (the first signs; all are accepted), the API's audiences (default: the
    # issuers) and the jwks_uri the OIDC discovery document names (default: this server's /openid/v1/jwks).
    service_account_issuers: tuple[str, ...] = ("https://kubernetes.default.svc.cluster.local",)
    api_audiences: tuple[str, ...] = ()
    service_account_jwks_uri: str = ""
    metric_resolution: float = 15.0  # --metric-resolution: how often nodes' resource metrics are scraped
    hpa_sync_period: float = 15.0  # --horizontal-pod-autoscaler-sync-period
    hpa_downscale_stabilization: float = 300.0  # --horizontal-pod-autoscaler-downscale-stabilization

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
                        help="CIDR Service ClusterIPs are allocated from; its first IP goes to `kubernetes`")
    parser.add_argument("--service-node-port-range", default="30000-32767",
                        help="port range NodePorts are allocated from")
    parser.add_argument("--advertise-address", default="",
                        help="the address the `kubernetes` Service's endpoints point at (default: the bind "
                             "address, or the default route's address when binding all addresses)")
    parser.add_argument("--admin-kubeconfig", default="/etc/shipmate/admin.kubeconfig")
    parser.add_argument("--watch-history-size", type=int, default=10000,
                        help="writes kept for watch resumption; older resourceVersions get 410 Expired")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--node-monitor-period", type=_duration, default="5s",
                        help="how often the node lifecycle controller checks node health")
    parser.add_argument("--node-monitor-grace-period", type=_duration, default="40s",
                        help="how long a node may go without renewing its Lease before it is marked Unknown")
    parser.add_argument("--pod-eviction-timeout", type=_duration, default="5m0s",
                        help="how long pods stay on a not-ready/unreachable node (their default "
                             "NoExecute tolerationSeconds) before they are evicted")
    parser.add_argument("--metric-resolution", type=_duration, default="15s",
                        help="how often the server scrapes each node's /metrics/resource for metrics.k8s.io "
                             "(metrics-server's flag); figures older than 3 times this are not served")
    parser.add_argument("--horizontal-pod-autoscaler-sync-period", type=_duration, default="15s",
                        help="how often each HorizontalPodAutoscaler is evaluated")
    parser.add_argument("--horizontal-pod-autoscaler-downscale-stabilization", type=_duration, default="5m0s",
                        help="the scale-down stabilization window of HorizontalPodAutoscalers without "
                             "behavior.scaleDown.stabilizationWindowSeconds")
    parser.add_argument("--cluster-signing-duration", type=_duration, default="8760h0m0s",
                        help="the longest validity of certificates the CSR signer issues (a request's "
                             "spec.expirationSeconds may ask for less)")
    parser.add_argument("--datastore-endpoint", default="",
                        help="etcd v3 cluster: etcd://h1:2379,h2:2379 (or https://h1:2379,https://h2:2379); "
                             "default: embedded SQLite in --data-dir")
    parser.add_argument("--datastore-cafile", default="", help="CA bundle that verifies the etcd servers (TLS)")
    parser.add_argument("--datastore-certfile", default="", help="client certificate for etcd (TLS)")
    parser.add_argument("--datastore-keyfile", default="", help="client key for etcd (TLS)")
    parser.add_argument("--snapshot", default="", metavar="FILE",
                        help="write a consistent copy of the SQLite store to FILE and exit (safe while serving)")
    parser.add_argument("--restore", default="", metavar="FILE",
                        help="replace the SQLite store with the snapshot FILE and exit (server must be stopped)")
    parser.add_argument("--tls-san", action="append", default=[], metavar="NAME_OR_IP",
                        help="another DNS name or IP address the serving certificate is valid for "
                             "(repeatable, or a comma-separated list)")
    parser.add_argument("--token-auth-file", default="", metavar="FILE",
                        help='static bearer tokens, one per line: token,user,uid[,"group1,group2"]')
    parser.add_argument("--pod-security-default", default="", metavar="MODE=VALUE,...",
                        help="the Pod Security policy of namespaces without pod-security.kubernetes.io labels: "
                             "enforce|audit|warn=privileged|baseline|restricted and enforce|audit|warn-version="
                             "latest|v1.N, comma-separated (default: privileged:latest for all three, as "
                             "kube-apiserver without an admission configuration)")
    parser.add_argument("--pod-security-exempt-namespaces", default="", metavar="NS,...",
                        help="namespaces Pod Security admission does not evaluate")
    parser.add_argument("--max-requests-inflight", type=int, default=400,
                        help="the maximum number of non-mutating requests in flight at a given time; past it "
                             "requests get 429 (zero for no limit)")
    parser.add_argument("--max-mutating-requests-inflight", type=int, default=200,
                        help="the maximum number of mutating requests in flight at a given time; past it "
                             "requests get 429 (zero for no limit)")
    parser.add_argument("--allow-service-external-ips", action="store_true",
                        help="accept Services with spec.externalIPs (refused by default, as upstream's "
                             "DenyServiceExternalIPs admission: any Service owner could capture traffic to "
                             "those addresses, CVE-2020-8554)")
    parser.add_argument("--max-open-connections", type=int, default=MAX_OPEN_CONNECTIONS,
                        help="the maximum number of open client connections; past it a new connection is "
                             f"closed at once (zero for no limit; default {MAX_OPEN_CONNECTIONS})")
    parser.add_argument("--service-account-issuer", action="append", default=[], metavar="URL",
                        help="the iss of service account tokens (repeatable: the first signs new tokens, all are "
                             "accepted; default https://kubernetes.default.svc.cluster.local)")
    parser.add_argument("--api-audiences", default="", metavar="AUD,...",
                        help="the audiences of the API: tokens must be meant for one of them (default: the issuers)")
    parser.add_argument("--service-account-jwks-uri", default="", metavar="URL",
                        help="the jwks_uri of /.well-known/openid-configuration (default: this server's "
                             "/openid/v1/jwks at the advertise address)")
    args = parser.parse_args(argv)
    issuers = tuple(dict.fromkeys(i.strip() for i in args.service_account_issuer if i.strip())) or \
        ("https://kubernetes.default.svc.cluster.local",)
    for issuer in issuers:
        if ":" in issuer and not issuer.startswith("https://"):
            parser.error(f"--service-account-issuer: {issuer!r} must be an https URL or a string without a colon")
    if args.service_account_jwks_uri and not args.service_account_jwks_uri.startswith("https://"):
        parser.error("--service-account-jwks-uri must be an https URL")
    audiences = tuple(a.strip() for a in args.api_audiences.split(",") if a.strip())
    try:
        parse_default(args.pod_security_default)
    except ValueError as exc:
        parser.error(f"--pod-security-default: {exc}")
    exempt_namespaces = tuple(n.strip() for n in args.pod_security_exempt_namespaces.split(",") if n.strip())
    for flag, value in (("--max-requests-inflight", args.max_requests_inflight),
                        ("--max-mutating-requests-inflight", args.max_mutating_requests_inflight),
                        ("--max-open-connections", args.max_open_connections)):
        if value < 0:
            parser.error(f"{flag} can not be negative")
    if args.token_auth_file:
        from apiserver.auth.authentication import load_token_file
        try:
            load_token_file(args.token_auth_file)
        except ValueError as exc:
            parser.error(f"--token-auth-file: {exc}")
    if args.datastore_endpoint or args.datastore_cafile or args.datastore_certfile or args.datastore_keyfile:
        from apiserver.storage.etcd import parse_etcd_endpoint
        if not args.datastore_endpoint:
            parser.error("--datastore-cafile/--datastore-certfile/--datastore-keyfile need --datastore-endpoint")
        try:
            parse_etcd_endpoint(args.datastore_endpoint, args.datastore_cafile, args.datastore_certfile,
                                args.datastore_keyfile)
        except ValueError as exc:
            parser.error(f"--datastore-endpoint: {exc}")
    if (args.snapshot or args.restore) and args.datastore_endpoint:
        parser.error("--snapshot/--restore are for the SQLite store; on etcd use `etcdctl snapshot save/restore`")
    if args.snapshot and args.restore:
        parser.error("--snapshot and --restore exclude each other")
    for flag, value in (("--cluster-cidr", args.cluster_cidr),
                        ("--service-cluster-ip-range", args.service_cluster_ip_range)):
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            parser.error(f"{flag}: {exc}")
    try:
        node_port_range = parse_port_range(args.service_node_port_range)
    except ValueError as exc:
        parser.error(f"--service-node-port-range: {exc}")
    advertise = args.advertise_address or args.bind_address
    if advertise in ("0.0.0.0", "::"):
        advertise = default_route_address()
    try:
        ipaddress.ip_address(advertise)
    except ValueError:
        parser.error(f"--advertise-address must be an IP address, got {advertise!r}")
    if not 1 <= args.port <= 65535:
        parser.error("--port must be between 1 and 65535")
    if args.watch_history_size < 1:
        parser.error("--watch-history-size must be at least 1")
    tls_sans = tuple(dict.fromkeys(value.strip() for values in args.tls_san for value in values.split(",")
                                   if value.strip()))
    for san in tls_sans:
        if not _valid_san(san):
            parser.error(f"--tls-san: {san!r} is neither an IP address nor a DNS name")
    cluster_prefix = ipaddress.ip_network(args.cluster_cidr).prefixlen
    if not cluster_prefix <= args.node_cidr_mask_size <= 30:
        parser.error(f"--node-cidr-mask-size must be between {cluster_prefix} and 30")
    return ServerConfig(args.bind_address, args.port, args.data_dir, args.cluster_cidr, args.node_cidr_mask_size,
                        args.service_cluster_ip_range, node_port_range, advertise, args.admin_kubeconfig, args.watch_history_size,
                        args.log_level.upper(), args.node_monitor_period, args.node_monitor_grace_period,
                        args.pod_eviction_timeout, datastore_endpoint=args.datastore_endpoint,
                        datastore_cafile=args.datastore_cafile, datastore_certfile=args.datastore_certfile,
                        datastore_keyfile=args.datastore_keyfile, snapshot_path=args.snapshot,
                        restore_path=args.restore, tls_sans=tls_sans, token_auth_file=args.token_auth_file,
                        cluster_signing_duration=args.cluster_signing_duration,
                        pod_security_default=args.pod_security_default,
                        pod_security_exempt_namespaces=exempt_namespaces,
                        max_requests_inflight=args.max_requests_inflight,
                        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
                        max_open_connections=args.max_open_connections,
                        allow_service_external_ips=args.allow_service_external_ips,
                        service_account_issuers=issuers, api_audiences=audiences,
                        service_account_jwks_uri=args.service_account_jwks_uri,
                        metric_resolution=args.metric_resolution,
                        hpa_sync_period=args.horizontal_pod_autoscaler_sync_period,
                        hpa_downscale_stabilization=args.horizontal_pod_autoscaler_downscale_stabilization)
