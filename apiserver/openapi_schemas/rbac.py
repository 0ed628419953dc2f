"""rbac.authorization.k8s.io kinds and the review kinds (authorization/authentication.k8s.io), documented."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_ACCESS_STATUS = ("authorization.SubjectAccessReviewStatus", "Filled in by the server: whether the request would be "
                  "allowed, and why.")
_RESOURCE_ATTRIBUTES = ("authorization.ResourceAttributes", "The resource request to check (exactly one of "
                        "resourceAttributes and nonResourceAttributes).")
_NON_RESOURCE_ATTRIBUTES = ("authorization.NonResourceAttributes", "The non-resource request to check (a URL path "
                            "such as /healthz).")

RBAC: dict[str, Definition] = {
    "rbac.PolicyRule": Definition(
        "What a rule allows: verbs on resources of API groups (optionally only the named objects), or verbs on "
        "non-resource URLs.", {
            "verbs": ("[]string", "Verbs allowed: get, list, watch, create, update, patch, delete, deletecollection, "
                                  "or * for all."),
            "apiGroups": ("[]string", "API groups of the resources (\"\" is the core group, * all groups)."),
            "resources": ("[]string", "Resources (pods, deployments, pods/log for a subresource, * for all, "
                                      "*/scale for a subresource of every resource)."),
            "resourceNames": ("[]string", "Only these object names (empty: every object)."),
            "nonResourceURLs": ("[]string", "URL paths such as /healthz; a trailing * matches any suffix. Only in "
                                            "ClusterRoles bound by ClusterRoleBindings.")}, ("verbs",)),
    "rbac.AggregationRule": Definition(
        "Which ClusterRoles' rules a ClusterRole aggregates.", {
            "clusterRoleSelectors": ("[]object", "Label selectors; a ClusterRole matching any of them adds its "
                                                 "rules.")}),
    "rbac.Subject": Definition(
        "Who a binding applies to.", {
            "kind": ("string", "User, Group or ServiceAccount."),
            "apiGroup": ("string", "rbac.authorization.k8s.io for User and Group (the default), \"\" for "
                                   "ServiceAccount."),
            "name": ("string", "The user, group or service account name."),
            "namespace": ("string", "The service account's namespace (defaults to the RoleBinding's).")},
        ("kind", "name")),
    "rbac.RoleRef": Definition(
        "The role a binding grants. Cannot be changed once the binding exists.", {
            "apiGroup": ("string", "rbac.authorization.k8s.io."),
            "kind": ("string", "Role or ClusterRole."),
            "name": ("string", "The role's name.")}, ("apiGroup", "kind", "name")),
    "rbac.Role": Definition("A namespaced set of rules, granted by RoleBindings in its namespace.",
                            kind_fields(rules=("[]rbac.PolicyRule", "The rules of this role."))),
    "rbac.ClusterRole": Definition(
        "A cluster-wide set of rules, granted everywhere by ClusterRoleBindings or in one namespace by "
        "RoleBindings.", kind_fields(rules=("[]rbac.PolicyRule", "The rules of this role (set by the server when "
                                                                  "aggregationRule is set)."),
                                     aggregationRule=("rbac.AggregationRule", "Build rules from other "
                                                                              "ClusterRoles."))),
    "rbac.RoleBinding": Definition(
        "Grants a Role or ClusterRole to subjects within the binding's namespace.",
        kind_fields(subjects=("[]rbac.Subject", "Who gets the role."),
                    roleRef=("rbac.RoleRef", "The Role (same namespace) or ClusterRole granted.")), ("roleRef",)),
    "rbac.ClusterRoleBinding": Definition(
        "Grants a ClusterRole to subjects in every namespace and for non-resource URLs.",
        kind_fields(subjects=("[]rbac.Subject", "Who gets the role."),
                    roleRef=("rbac.RoleRef", "The ClusterRole granted.")), ("roleRef",)),
    "authorization.ResourceAttributes": Definition("A resource request, as the authorizer sees it.", {
        "namespace": ("string", "Namespace (empty: cluster-scoped or all namespaces)."),
        "verb": ("string", "get, list, watch, create, update, patch, delete, deletecollection, ..."),
        "group": ("string", "API group."), "version": ("string", "API version."),
        "resource": ("string", "Resource."), "subresource": ("string", "Subresource."),
        "name": ("string", "Object name (empty: all).")}),
    "authorization.NonResourceAttributes": Definition("A non-resource request.", {
        "path": ("string", "URL path."), "verb": ("string", "Lower-cased HTTP method.")}),
    "authorization.SubjectAccessReviewStatus": Definition("The answer to an access review.", {
        "allowed": ("boolean", "Whether the request would be allowed."),
        "denied": ("boolean", "Whether an authorizer explicitly denied it."),
        "reason": ("string", "Why."), "evaluationError": ("string", "Errors met while evaluating.")}),
    "authorization.SelfSubjectAccessReviewSpec": Definition("The request to check for the requesting user.", {
        "resourceAttributes": _RESOURCE_ATTRIBUTES, "nonResourceAttributes": _NON_RESOURCE_ATTRIBUTES}),
    "authorization.SubjectAccessReviewSpec": Definition("The request to check, and for whom.", {
        "resourceAttributes": _RESOURCE_ATTRIBUTES, "nonResourceAttributes": _NON_RESOURCE_ATTRIBUTES,
        "user": ("string", "The user to check."), "groups": ("[]string", "Their groups."),
        "uid": ("string", "Their UID."), "extra": ("object", "Their extra attributes.")}),
    "authorization.SelfSubjectAccessReview": Definition(
        "Whether the requesting user may do something (`kubectl auth can-i`). Create-only, not stored.",
        kind_fields(("authorization.SelfSubjectAccessReviewSpec", "The request to check."), _ACCESS_STATUS)),
    "authorization.SubjectAccessReview": Definition(
        "Whether a given user may do something. Create-only, not stored.",
        kind_fields(("authorization.SubjectAccessReviewSpec", "The request and user to check."), _ACCESS_STATUS)),
    "authorization.LocalSubjectAccessReview": Definition(
        "A SubjectAccessReview limited to one namespace. Create-only, not stored.",
        kind_fields(("authorization.SubjectAccessReviewSpec", "The request and user to check; "
                                                              "resourceAttributes.namespace must be this one."),
                    _ACCESS_STATUS)),
    "authorization.SelfSubjectRulesReview": Definition(
        "What the requesting user may do in a namespace (`kubectl auth can-i --list`). Create-only, not stored.",
        kind_fields(("object", "namespace: the namespace to list rules for."),
                    ("object", "resourceRules, nonResourceRules, incomplete, evaluationError."))),
    "authentication.SelfSubjectReview": Definition(
        "Who the server takes the requester to be (`kubectl auth whoami`). Create-only, not stored.",
        kind_fields(status=("object", "userInfo: username, uid, groups, extra."))),
}
