"""TLS from the API server to node servers (:10250): the node's serving certificate must chain to the cluster
CA (its kubernetes.io/kubelet-serving certificate), name the address we dial (an IP or DNS SAN, checked in the
handshake), and be the certificate of that node (subject `system:node:<name>`), or the handshake fails before
any request is sent. Upstream verifies with --kubelet-certificate-authority; the subject check is ours, so a
certificate one node obtained for its own addresses never serves for another node. The API server presents
its apiserver-kubelet-client certificate."""
from __future__ import annotations

import ssl
from typing import Any

from shipmate import pki

NODE_USER_PREFIX = "system:node:"
DEFAULT_NODE_PORT = 10250


def node_address(node: dict[str, Any]) -> tuple[str, int]:
    """Where a node's server listens: its InternalIP (else Hostname, else its name) and
    `status.daemonEndpoints.kubeletEndpoint.Port` (10250 if absent)."""
    status = node.get("status") or {}
    addresses = {a.get("type"): a.get("address") for a in status.get("addresses") or []}
    host = addresses.get("InternalIP") or addresses.get("Hostname") or node["metadata"]["name"]
    port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port") or DEFAULT_NODE_PORT
    return host, int(port)


class NodeIdentityError(ssl.SSLCertVerificationError):
    pass


def _identity_checked(expected_subject: str) -> type[ssl.SSLObject]:
    class NodeIdentityChecked(ssl.SSLObject):
        def do_handshake(self) -> None:
            super().do_handshake()
            der = self.getpeercert(binary_form=True)
            subject = pki.cert_subject(der)[0] if der else ""
            if subject != expected_subject:
                raise NodeIdentityError(f"x509: certificate is for {subject!r}, not {expected_subject!r}")
    return NodeIdentityChecked


def node_client_context(ca_cert_pem: bytes, client_cert: str, client_key: str, node_name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_cert_pem.decode())
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(client_cert, client_key)
    context.sslobject_class = _identity_checked(NODE_USER_PREFIX + node_name)
    return context
