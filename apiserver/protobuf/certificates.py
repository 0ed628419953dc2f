"""Protobuf schema (upstream certificates/v1 generated.proto field numbers) of the CertificateSigningRequest
kubectl's typed client sends as protobuf: `kubectl certificate approve|deny` PUT it to /approval.

spec.extra (field 6, map<string, ExtraValue>) is not decoded: every write path keeps the stored spec."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, TIME, Field

CONDITION = {1: Field("type", "string"), 6: Field("status", "string"), 2: Field("reason", "string"),
             3: Field("message", "string"), 4: Field("lastUpdateTime", TIME), 5: Field("lastTransitionTime", TIME)}
SPEC = {1: Field("request", "base64"), 7: Field("signerName", "string"), 8: Field("expirationSeconds", "int"),
        5: Field("usages", "string", repeated=True), 2: Field("username", "string"), 3: Field("uid", "string"),
        4: Field("groups", "string", repeated=True)}
STATUS = {1: Field("conditions", "message", CONDITION, repeated=True), 2: Field("certificate", "base64")}
CSR = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", SPEC),
       3: Field("status", "message", STATUS)}

CERTIFICATES_SCHEMAS = {("certificates.k8s.io/v1", "CertificateSigningRequest"): CSR}
