"""certificates.k8s.io/v1 CertificateSigningRequest, documented (`kubectl explain csr`)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

CERTIFICATES: dict[str, Definition] = {
    "certificates.CertificateSigningRequest": Definition(
        "A request for an X.509 certificate from a signer: approved or denied (the approval subresource), then "
        "issued by the signer (the status subresource). Nodes get their client certificates this way.",
        kind_fields(("certificates.CertificateSigningRequestSpec", "The request; immutable after creation."),
                    ("certificates.CertificateSigningRequestStatus", "Approval conditions and the issued "
                                                                     "certificate.")),
        ("spec",)),
    "certificates.CertificateSigningRequestSpec": Definition(
        "The certificate request and who made it.", {
            "request": ("string", "A PKCS#10 CERTIFICATE REQUEST PEM block, base64-encoded in JSON."),
            "signerName": ("string", "The signer asked to issue it, a qualified name: "
                                     "kubernetes.io/kube-apiserver-client-kubelet (node client certificates, "
                                     "auto-approved for new and renewing nodes), kubernetes.io/kube-apiserver-client "
                                     "(client certificates an administrator approves), or a custom signer."),
            "expirationSeconds": ("integer", "Requested validity in seconds (at least 600); the signer issues at "
                                             "most --cluster-signing-duration."),
            "usages": ("[]string", "Key usages asked for, e.g. digital signature, key encipherment, client auth."),
            "username": ("string", "Who created the request. Set by the server."),
            "uid": ("string", "The creator's uid. Set by the server."),
            "groups": ("[]string", "The creator's groups. Set by the server."),
            "extra": ("map[string][]string", "The creator's extra attributes. Set by the server."),
        }, ("request", "signerName", "usages")),
    "certificates.CertificateSigningRequestStatus": Definition(
        "Whether the request was approved or denied, and the issued certificate.", {
            "conditions": ("[]certificates.CertificateSigningRequestCondition", "Approved or Denied (set through "
                                                                               "the approval subresource), Failed "
                                                                               "(set by the signer)."),
            "certificate": ("string", "The issued certificate (PEM, base64-encoded in JSON), set once by the "
                                      "signer through the status subresource."),
        }),
    "certificates.CertificateSigningRequestCondition": Definition(
        "One state of the request.", {
            "type": ("string", "Approved, Denied or Failed. Approved and Denied exclude each other; none can be "
                               "removed once added."),
            "status": ("string", "True (the only value Approved, Denied and Failed allow), False or Unknown."),
            "reason": ("string", "Short CamelCase reason, e.g. AutoApproved, KubectlApprove."),
            "message": ("string", "Human-readable details."),
            "lastUpdateTime": ("Time", "When the condition last changed; defaulted by the server."),
            "lastTransitionTime": ("Time", "When the status last changed; defaulted by the server."),
        }, ("type", "status")),
}
