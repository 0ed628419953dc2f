"""Protobuf schemas (upstream generated.proto field numbers) of what kubectl's typed clients send as protobuf
for RBAC: `kubectl create role|clusterrole|rolebinding|clusterrolebinding`, and the review kinds of
`kubectl auth can-i [--list]` (authorization.k8s.io/v1) and `kubectl auth whoami` (authentication.k8s.io/v1)."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field
from apiserver.protobuf.workloads import LABEL_SELECTOR

POLICY_RULE = {1: Field("verbs", "string", repeated=True), 2: Field("apiGroups", "string", repeated=True),
               3: Field("resources", "string", repeated=True), 4: Field("resourceNames", "string", repeated=True),
               5: Field("nonResourceURLs", "string", repeated=True)}
SUBJECT = {1: Field("kind", "string"), 2: Field("apiGroup", "string"), 3: Field("name", "string"),
           4: Field("namespace", "string")}
ROLE_REF = {1: Field("apiGroup", "string"), 2: Field("kind", "string"), 3: Field("name", "string")}
ROLE = {1: Field("metadata", "message", OBJECT_META), 2: Field("rules", "message", POLICY_RULE, repeated=True)}
CLUSTER_ROLE = {**ROLE, 3: Field("aggregationRule", "message", {
    1: Field("clusterRoleSelectors", "message", LABEL_SELECTOR, repeated=True)})}
BINDING = {1: Field("metadata", "message", OBJECT_META), 2: Field("subjects", "message", SUBJECT, repeated=True),
           3: Field("roleRef", "message", ROLE_REF)}

RESOURCE_ATTRIBUTES = {1: Field("namespace", "string"), 2: Field("verb", "string"), 3: Field("group", "string"),
                       4: Field("version", "string"), 5: Field("resource", "string"),
                       6: Field("subresource", "string"), 7: Field("name", "string")}
NON_RESOURCE_ATTRIBUTES = {1: Field("path", "string"), 2: Field("verb", "string")}
_ATTRIBUTES = {1: Field("resourceAttributes", "message", RESOURCE_ATTRIBUTES),
               2: Field("nonResourceAttributes", "message", NON_RESOURCE_ATTRIBUTES)}
SUBJECT_ACCESS_REVIEW_SPEC = {**_ATTRIBUTES, 3: Field("user", "string"), 4: Field("groups", "string", repeated=True),
                              6: Field("uid", "string")}
SELF_SUBJECT_ACCESS_REVIEW = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", _ATTRIBUTES)}
SUBJECT_ACCESS_REVIEW = {1: Field("metadata", "message", OBJECT_META),
                         2: Field("spec", "message", SUBJECT_ACCESS_REVIEW_SPEC)}
SELF_SUBJECT_RULES_REVIEW = {1: Field("metadata", "message", OBJECT_META),
                             2: Field("spec", "message", {1: Field("namespace", "string")})}
SELF_SUBJECT_REVIEW = {1: Field("metadata", "message", OBJECT_META)}

_RBAC = "rbac.authorization.k8s.io/v1"
_AUTHORIZATION = "authorization.k8s.io/v1"
RBAC_SCHEMAS = {
    (_RBAC, "Role"): ROLE, (_RBAC, "ClusterRole"): CLUSTER_ROLE, (_RBAC, "RoleBinding"): BINDING,
    (_RBAC, "ClusterRoleBinding"): BINDING,
    (_AUTHORIZATION, "SelfSubjectAccessReview"): SELF_SUBJECT_ACCESS_REVIEW,
    (_AUTHORIZATION, "SubjectAccessReview"): SUBJECT_ACCESS_REVIEW,
    (_AUTHORIZATION, "LocalSubjectAccessReview"): SUBJECT_ACCESS_REVIEW,
    (_AUTHORIZATION, "SelfSubjectRulesReview"): SELF_SUBJECT_RULES_REVIEW,
    ("authentication.k8s.io/v1", "SelfSubjectReview"): SELF_SUBJECT_REVIEW,
}
