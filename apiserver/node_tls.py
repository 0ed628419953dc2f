"""TLS from the API server to node servers (:10250): the node's serving certificate must chain to the cluster
CA (its kubernetes.io/kubelet-serving certificate), name the address we dial (an IP or DNS SAN, checked in the
handshake), and be the certificate of that node (subject `system:node:<name>`), or the handshake fails before
any request is sent. Upstream verifies with --kubelet-certificate-authority; the subject check is ours, so a
certificate one node obtained for its own addresses never serves for another node. The API server presents
its apiserver-kubelet-client certificate."""
from __future__ import annotations

import ssl

from shipmate import pki

NODE_USER_PREFIX = "system:node:"


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
