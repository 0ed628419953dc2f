"""Chain names exactly as kube-proxy's iptables mode computes them.

Upstream hashes `ServicePortName.String() + lowercase protocol` (plus `ip:port` for endpoint
chains) with SHA-256, encodes it base32 and keeps 16 characters, so that names fit iptables'
28-character limit and stay stable across restarts and nodes.
"""
from __future__ import annotations

import base64
import hashlib

SERVICES = "KUBE-SERVICES"
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
FORWARD = "KUBE-FORWARD"
IPTABLES_HINT = "KUBE-IPTABLES-HINT"
FIREWALL = "KUBE-FIREWALL"  # filter: guards NodePorts on localhost (route_localnet)
# An empty chain in each table, written last by a full sync: when one is missing, someone
# flushed or deleted our rules and the next periodic sync is a full one (kube-proxy's canary).
CANARY = "KUBE-PROXY-CANARY"
CANARY_TABLES = ("mangle", "nat", "filter")

CLUSTER_POLICY_PREFIX = "KUBE-SVC-"
LOCAL_POLICY_PREFIX = "KUBE-SVL-"
EXTERNAL_PREFIX = "KUBE-EXT-"
FIREWALL_PREFIX = "KUBE-FW-"
ENDPOINT_PREFIX = "KUBE-SEP-"
SERVICE_CHAIN_PREFIXES = (CLUSTER_POLICY_PREFIX, LOCAL_POLICY_PREFIX, EXTERNAL_PREFIX,
                          FIREWALL_PREFIX, ENDPOINT_PREFIX)

# The top-level chains each table owns entirely (written in full on every full sync).
NAT_TOP_CHAINS = (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ)
FILTER_TOP_CHAINS = (SERVICES, EXTERNAL_SERVICES, FORWARD, NODEPORTS, FIREWALL)


def _hash16(text: str) -> str:
    # 10 bytes are exactly 16 base32 characters: the same prefix as encoding all 32, 3x faster.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()[:10]).decode()


def port_proto_hash(service_port_name: str, protocol: str) -> str:
    return _hash16(service_port_name + protocol.lower())


def cluster_policy_chain(service_port_name: str, protocol: str) -> str:
    return CLUSTER_POLICY_PREFIX + port_proto_hash(service_port_name, protocol)


def local_policy_chain(service_port_name: str, protocol: str) -> str:
    return LOCAL_POLICY_PREFIX + port_proto_hash(service_port_name, protocol)


def external_chain(service_port_name: str, protocol: str) -> str:
    return EXTERNAL_PREFIX + port_proto_hash(service_port_name, protocol)


def endpoint_chain(service_port_name: str, protocol: str, endpoint: str) -> str:
    """`endpoint` is `ip:port`, as upstream's BaseEndpointInfo.String()."""
    return ENDPOINT_PREFIX + _hash16(service_port_name + protocol.lower() + endpoint)


def is_service_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)
