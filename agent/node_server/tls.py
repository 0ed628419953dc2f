"""The node server's TLS: its kubelet-serving certificate and the client certificates it accepts.

The serving certificate is issued by the cluster CA through a kubernetes.io/kubelet-serving CSR
(agent/cert_rotation.py, kind SERVING): subject `system:node:<node>` / `system:nodes`, SANs = the Node's
addresses (`serving_names`), in `<root-dir>/pki/kubelet-server-current.pem` (certificate + key). Until the
first one is issued the server does not listen (as kubelet, whose handshakes fail without one): the API
server's logs/exec answer `connection refused`, and the agent logs that it waits. A rotated certificate is
loaded into the live context; new connections use it. Clients must present a certificate signed by the
cluster CA (`<root-dir>/pki/ca.crt`, from the join): kubelet's `--client-ca-file`.
"""
from __future__ import annotations

import ssl
from typing import Any

_IP_TYPES = ("InternalIP", "ExternalIP")
_DNS_TYPES = ("Hostname", "InternalDNS", "ExternalDNS")


def serving_names(node: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of the serving certificate: exactly the Node's status.addresses, the only
    names the server's approver accepts (and the address the API server dials is one of them)."""
    addresses = [a for a in ((node.get("status") or {}).get("addresses") or []) if isinstance(a, dict)]
    dns = [str(a["address"]) for a in addresses if a.get("type") in _DNS_TYPES and a.get("address")]
    ips = [str(a["address"]) for a in addresses if a.get("type") in _IP_TYPES and a.get("address")]
    return list(dict.fromkeys(dns)), list(dict.fromkeys(ips))


def server_context(pem: str, client_ca_file: str) -> ssl.SSLContext:
    """TLS >= 1.2 with the certificate + key file `pem`; every client must present a certificate chaining to
    the cluster CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(pem)
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
