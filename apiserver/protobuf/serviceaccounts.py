"""Protobuf schemas (upstream generated.proto field numbers) of ServiceAccount (`kubectl create serviceaccount`)
and the authentication.k8s.io/v1 TokenRequest (`kubectl create token`) and TokenReview."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, TIME, Field

OBJECT_REFERENCE = {1: Field("kind", "string"), 2: Field("namespace", "string"), 3: Field("name", "string"),
                    4: Field("uid", "string"), 5: Field("apiVersion", "string"), 6: Field("resourceVersion", "string"),
                    7: Field("fieldPath", "string")}
SERVICE_ACCOUNT = {1: Field("metadata", "message", OBJECT_META),
                   2: Field("secrets", "message", OBJECT_REFERENCE, repeated=True),
                   3: Field("imagePullSecrets", "message", {1: Field("name", "string")}, repeated=True),
                   4: Field("automountServiceAccountToken", "bool", keep_zero=True)}
BOUND_OBJECT_REFERENCE = {1: Field("kind", "string"), 2: Field("apiVersion", "string"), 3: Field("name", "string"),
                          4: Field("uid", "string")}
TOKEN_REQUEST = {1: Field("metadata", "message", OBJECT_META),
                 2: Field("spec", "message", {1: Field("audiences", "string", repeated=True),
                                              3: Field("boundObjectRef", "message", BOUND_OBJECT_REFERENCE),
                                              4: Field("expirationSeconds", "int")}),
                 3: Field("status", "message", {1: Field("token", "string"), 2: Field("expirationTimestamp", TIME)})}
TOKEN_REVIEW = {1: Field("metadata", "message", OBJECT_META),
                2: Field("spec", "message", {1: Field("token", "string"),
                                             2: Field("audiences", "string", repeated=True)})}
SERVICE_ACCOUNT_SCHEMAS: dict[tuple[str, str], dict[int, Field]] = {
    ("v1", "ServiceAccount"): SERVICE_ACCOUNT,
    ("authentication.k8s.io/v1", "TokenRequest"): TOKEN_REQUEST,
    ("authentication.k8s.io/v1", "TokenReview"): TOKEN_REVIEW,
}
