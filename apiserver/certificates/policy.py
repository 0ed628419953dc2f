"""Pure rules of the in-tree signers and the kubelet auto-approver (upstream's certificates helpers, approver
and signer): what kubelet client and serving certificate requests must look like, which requests the approver
recognizes and with which permission, and how long an issued certificate lives.

Kubelet serving certificates (kubernetes.io/kubelet-serving) are auto-approved here, unlike upstream (where an
operator or an external approver must): only when the node itself asks (requester = the request's CN,
system:node:<name>, in system:nodes) and every SAN is one of that Node's status.addresses (IPs among its
InternalIP/ExternalIP, DNS names among its Hostname/InternalDNS/ExternalDNS). The API server verifies node
servers against these certificates (apiserver/http/node_tls.py)."""
from __future__ import annotations

from dataclasses import dataclass

from apiserver.auth.user import NODE_USER_PREFIX, SYSTEM_NODES
from apiserver.certificates.requests import ParsedRequest
from apiserver.kinds.base import Obj
from apiserver.kinds.csr_rules import (APISERVER_CLIENT_SIGNER, APPROVED, DENIED, FAILED, KUBELET_CLIENT_SIGNER,
                                       KUBELET_SERVING_SIGNER, certificate_pem, has_condition, spec_of)

KUBELET_CLIENT_USAGES = frozenset({"digital signature", "key encipherment", "client auth"})
KUBELET_CLIENT_USAGES_NO_RSA = frozenset({"digital signature", "client auth"})
KUBELET_SERVING_USAGES = frozenset({"digital signature", "key encipherment", "server auth"})
KUBELET_SERVING_USAGES_NO_RSA = frozenset({"digital signature", "server auth"})
_ADDRESS_IP_TYPES = ("InternalIP", "ExternalIP")
_ADDRESS_DNS_TYPES = ("Hostname", "InternalDNS", "ExternalDNS")
_OPTIONAL_CLIENT_USAGES = frozenset({"digital signature", "key encipherment"})
DEFAULT_SIGNING_SECONDS = 8760 * 3600  # --cluster-signing-duration
MIN_SIGNING_SECONDS = 600  # upstream's sanity floor: twice the signer's backdating

AUTO_APPROVED = "AutoApproved"
SELF_NODE_CLIENT_MESSAGE = "Auto approving self kubelet client certificate after SubjectAccessReview."
NODE_CLIENT_MESSAGE = "Auto approving kubelet client certificate after SubjectAccessReview."
SELF_NODE_SERVING_MESSAGE = "Auto approving self kubelet serving certificate: its names are the node's addresses."
SIGNER_VALIDATION_FAILURE = "SignerValidationFailure"


def usages_of(csr: Obj) -> set[str]:
    usages = spec_of(csr).get("usages")
    return {u for u in usages if isinstance(u, str)} if isinstance(usages, list) else set()


def kubelet_client_problem(request: ParsedRequest, usages: set[str]) -> str | None:
    """Upstream's ValidateKubeletClientCSR: O exactly [system:nodes], CN system:node:<name>, no SANs, and the
    usages of a client certificate (key encipherment only for RSA keys, so both sets pass)."""
    if list(request.organizations) != [SYSTEM_NODES]:
        return "subject organization is not system:nodes"
    if request.dns_names:
        return "DNS subjectAltNames are not allowed"
    if request.email_addresses:
        return "Email subjectAltNames are not allowed"
    if request.ip_addresses:
        return "IP subjectAltNames are not allowed"
    if request.uris:
        return "URI subjectAltNames are not allowed"
    if not request.common_name.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    if usages != KUBELET_CLIENT_USAGES and usages != KUBELET_CLIENT_USAGES_NO_RSA:
        return f"usages did not match [{' '.join(sorted(KUBELET_CLIENT_USAGES))}]"
    return None


def kubelet_serving_problem(request: ParsedRequest, usages: set[str]) -> str | None:
    """Upstream's ValidateKubeletServingCSR: O exactly [system:nodes], a DNS or IP SAN, no email/URI SANs,
    the usages of a serving certificate, CN system:node:<name>."""
    if list(request.organizations) != [SYSTEM_NODES]:
        return "subject organization is not system:nodes"
    if not request.dns_names and not request.ip_addresses:
        return "DNS or IP subjectAltName is required"
    if request.email_addresses:
        return "Email subjectAltNames are not allowed"
    if request.uris:
        return "URI subjectAltNames are not allowed"
    if usages != KUBELET_SERVING_USAGES and usages != KUBELET_SERVING_USAGES_NO_RSA:
        return f"usages did not match [{' '.join(sorted(KUBELET_SERVING_USAGES))}]"
    if not request.common_name.startswith(NODE_USER_PREFIX):
        return "subject common name does not begin with system:node:"
    return None


def serving_names_problem(request: ParsedRequest, node: Obj | None) -> str | None:
    """Why the node's own serving request may not be auto-approved: names that are not its addresses."""
    if node is None:
        return "the node does not exist"
    addresses = ((node.get("status") or {}).get("addresses")) or []
    ips = {str(a.get("address")) for a in addresses if isinstance(a, dict) and a.get("type") in _ADDRESS_IP_TYPES}
    names = {str(a.get("address")) for a in addresses
             if isinstance(a, dict) and a.get("type") in _ADDRESS_DNS_TYPES}
    foreign = [ip for ip in request.ip_addresses if ip not in ips] + \
        [name for name in request.dns_names if name not in names]
    if foreign:
        return f"subjectAltNames {', '.join(foreign)} are not addresses of node {node['metadata']['name']}"
    return None


def self_serving_request(csr: Obj, request: ParsedRequest) -> bool:
    """A kubelet-serving request of the right shape that the node it names made itself."""
    spec = spec_of(csr)
    return (spec.get("signerName") == KUBELET_SERVING_SIGNER and not kubelet_serving_problem(request, usages_of(csr))
            and spec.get("username") == request.common_name and SYSTEM_NODES in (spec.get("groups") or []))


def apiserver_client_problem(usages: list[str]) -> str | None:
    """kubernetes.io/kube-apiserver-client: client auth, optionally digital signature / key encipherment."""
    for usage in usages:
        if usage not in _OPTIONAL_CLIENT_USAGES and usage != "client auth":
            return f"invalid usage for client certificate: {usage}"
    if "client auth" not in usages:
        return "missing required usage for client certificate: client auth"
    return None


# approver ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Recognized:
    """A request the approver recognized: the permission (subresource of certificatesigningrequests) the
    requester needs for it to be approved, and the approval message."""
    subresource: str
    message: str


def awaiting_approval(csr: Obj) -> bool:
    return not certificate_pem(csr) and not has_condition(csr, APPROVED) and not has_condition(csr, DENIED)


def recognize(csr: Obj, request: ParsedRequest) -> list[Recognized]:
    """Upstream's recognizers, most specific first: a node renewing its own client certificate
    (requester == CN), then any kubelet client certificate."""
    spec = spec_of(csr)
    if spec.get("signerName") != KUBELET_CLIENT_SIGNER or kubelet_client_problem(request, usages_of(csr)):
        return []
    recognized = []
    if spec.get("username") == request.common_name:
        recognized.append(Recognized("selfnodeclient", SELF_NODE_CLIENT_MESSAGE))
    recognized.append(Recognized("nodeclient", NODE_CLIENT_MESSAGE))
    return recognized


def approved_condition(message: str, now: str) -> dict[str, str]:
    return {"type": APPROVED, "status": "True", "reason": AUTO_APPROVED, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}


# signer ------------------------------------------------------------------------------------------
def awaiting_signature(csr: Obj) -> bool:
    return has_condition(csr, APPROVED) and not has_condition(csr, FAILED) and not certificate_pem(csr)


def signer_problem(csr: Obj, request: ParsedRequest) -> tuple[bool, str | None]:
    """(whether one of our signers handles this request, why it must fail if so)."""
    spec = spec_of(csr)
    usages = spec.get("usages") if isinstance(spec.get("usages"), list) else []
    if spec.get("signerName") == KUBELET_CLIENT_SIGNER:
        return True, kubelet_client_problem(request, usages_of(csr))
    if spec.get("signerName") == APISERVER_CLIENT_SIGNER:
        return True, apiserver_client_problem(usages)
    if spec.get("signerName") == KUBELET_SERVING_SIGNER:
        return True, kubelet_serving_problem(request, usages_of(csr))
    return False, None


def is_serving(csr: Obj) -> bool:
    return spec_of(csr).get("signerName") == KUBELET_SERVING_SIGNER


def signing_seconds(max_seconds: int, expiration_seconds: object) -> int:
    """--cluster-signing-duration, or the requested spec.expirationSeconds when shorter (at least 10 minutes)."""
    if not isinstance(expiration_seconds, int) or isinstance(expiration_seconds, bool):
        return max_seconds
    if expiration_seconds > max_seconds:
        return max_seconds
    return max(MIN_SIGNING_SECONDS, expiration_seconds)


def failed_condition(message: str, now: str) -> dict[str, str]:
    return {"type": FAILED, "status": "True", "reason": SIGNER_VALIDATION_FAILURE, "message": message,
            "lastUpdateTime": now, "lastTransitionTime": now}
