"""Upstream's default ClusterRoles and ClusterRoleBindings, created and reconciled at server start.

As upstream's bootstrap-roles post-start hook: a missing default is created; an existing one annotated
`rbac.authorization.kubernetes.io/autoupdate: "true"` (or without the annotation) gets the default's
missing rules, subjects, labels and annotations added (what an admin added stays); "false" leaves it
alone. Aggregated roles (admin, edit, view) get the union of the rules of the ClusterRoles their
aggregationRule selects. Several servers may run this at once: AlreadyExists and conflicts are retried.
"""
from __future__ import annotations

import logging
from typing import Any

from apiserver import errors
from apiserver.kinds.base import Obj
from apiserver.kinds.rbac import GROUP
from apiserver.registry import DeleteOptions
from shipmate.selectors import SelectorError, label_selector_from_dict

log = logging.getLogger(__name__)

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAPPING_LABEL = "kubernetes.io/bootstrapping"
BOOTSTRAPPING_VALUE = "rbac-defaults"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
READ = ["get", "list", "watch"]
WRITE = ["create", "delete", "deletecollection", "patch", "update"]
READ_WRITE = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _rule(verbs: list[str], groups: list[str], resources: list[str], names: list[str] = ()) -> Obj:
    rule: Obj = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        rule["resourceNames"] = list(names)
    return rule


def _urls(verbs: list[str], urls: list[str]) -> Obj:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def _cluster_role(name: str, rules: list[Obj], labels: dict[str, str] | None = None,
                  aggregate_from: str = "") -> Obj:
    role: Obj = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole",
                 "metadata": {"name": name, "labels": {BOOTSTRAPPING_LABEL: BOOTSTRAPPING_VALUE, **(labels or {})},
                              "annotations": {AUTOUPDATE: "true"}},
                 "rules": rules}
    if aggregate_from:
        role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGGREGATE_TO + aggregate_from: "true"}}]}
    return role


def _binding(name: str, role: str, groups: list[str] = (), users: list[str] = ()) -> Obj:
    subjects = [{"apiGroup": GROUP, "kind": "Group", "name": g} for g in groups] + \
               [{"apiGroup": GROUP, "kind": "User", "name": u} for u in users]
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name, "labels": {BOOTSTRAPPING_LABEL: BOOTSTRAPPING_VALUE},
                         "annotations": {AUTOUPDATE: "true"}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role}, "subjects": subjects}


def default_cluster_roles() -> list[Obj]:
    """The defaults (rules as upstream's bootstrappolicy, limited to what a single cluster needs)."""
    csr = "certificatesigningrequests"
    return [
        _cluster_role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
        _cluster_role("admin", [], aggregate_from="admin"),
        _cluster_role("edit", [], {AGGREGATE_TO + "admin": "true"}, aggregate_from="edit"),
        _cluster_role("view", [], {AGGREGATE_TO + "edit": "true"}, aggregate_from="view"),
        _cluster_role("system:aggregate-to-admin", [
            _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
            _rule(READ_WRITE, ["rbac.authorization.k8s.io"], ["rolebindings", "roles"]),
        ], {AGGREGATE_TO + "admin": "true"}),
        _cluster_role("system:aggregate-to-edit", [
            _rule(READ, [""], ["pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets",
                               "services/proxy"]),
            _rule(["impersonate"], [""], ["serviceaccounts"]),
            _rule(WRITE, [""], ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy"]),
            _rule(["create"], [""], ["pods/eviction"]),
            _rule(WRITE, [""], ["configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                                "replicationcontrollers/scale", "secrets", "serviceaccounts", "services",
                                "services/proxy"]),
            _rule(["create"], [""], ["serviceaccounts/token"]),
            _rule(WRITE, ["apps"], ["daemonsets", "deployments", "deployments/rollback", "deployments/scale",
                                    "replicasets", "replicasets/scale", "statefulsets", "statefulsets/scale"]),
            _rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
            _rule(WRITE, ["batch"], ["cronjobs", "jobs"]),
            _rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
            _rule(WRITE, ["networking.k8s.io"], ["ingresses", "networkpolicies"]),
            _rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
        ], {AGGREGATE_TO + "edit": "true"}),
        _cluster_role("system:aggregate-to-view", [
            _rule(READ, [""], ["configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status",
                               "pods", "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts",
                               "services", "services/status"]),
            _rule(READ, [""], ["bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                               "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"]),
            _rule(READ, [""], ["namespaces"]),
            _rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
            _rule(READ, ["apps"], ["controllerrevisions", "daemonsets", "daemonsets/status", "deployments",
                                   "deployments/scale", "deployments/status", "replicasets", "replicasets/scale",
                                   "replicasets/status", "statefulsets", "statefulsets/scale",
                                   "statefulsets/status"]),
            _rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
            _rule(READ, ["batch"], ["cronjobs", "cronjobs/status", "jobs", "jobs/status"]),
            _rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
            _rule(READ, ["networking.k8s.io"], ["ingresses", "ingresses/status", "networkpolicies"]),
        ], {AGGREGATE_TO + "view": "true"}),
        # metrics-server ships this one; the server serves metrics.k8s.io itself, so it is a default here:
        # view/edit/admin (and so a namespace's RoleBinding to them) read that namespace's pod metrics.
        _cluster_role("system:aggregated-metrics-reader", [
            _rule(READ, ["metrics.k8s.io"], ["nodes", "pods"]),
        ], {AGGREGATE_TO + "view": "true", AGGREGATE_TO + "edit": "true", AGGREGATE_TO + "admin": "true"}),
        _cluster_role("system:basic-user", [
            _rule(["create"], ["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
        ]),
        _cluster_role("system:discovery", [_urls(["get"], ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
                                                           "/livez", "/openapi", "/openapi/*", "/readyz",
                                                           "/version", "/version/"])]),
        _cluster_role("system:public-info-viewer", [_urls(["get"], ["/healthz", "/livez", "/readyz", "/version",
                                                                    "/version/"])]),
        _cluster_role("system:monitoring", [_urls(["get"], ["/healthz", "/healthz/*", "/livez", "/livez/*",
                                                            "/metrics", "/metrics/slis", "/readyz", "/readyz/*"])]),
        _cluster_role("system:node-bootstrapper", [_rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
                                                         [csr])]),
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:nodeclient",
                      [_rule(["create"], ["certificates.k8s.io"], [f"{csr}/nodeclient"])]),
        _cluster_role("system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
                      [_rule(["create"], ["certificates.k8s.io"], [f"{csr}/selfnodeclient"])]),
        # Service accounts: OIDC issuer discovery (bound to every service account below) and delegated
        # authentication/authorization (bound by whoever needs it).
        _cluster_role("system:service-account-issuer-discovery", [_urls(["get"], [
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/", "/openid/v1/jwks",
            "/openid/v1/jwks/"])]),
        _cluster_role("system:auth-delegator", [
            _rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
            _rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"]),
        ]),
    ]


def default_cluster_role_bindings() -> list[Obj]:
    authenticated, unauthenticated = "system:authenticated", "system:unauthenticated"
    csr_role = "system:certificates.k8s.io:certificatesigningrequests:"
    return [
        _binding("cluster-admin", "cluster-admin", groups=["system:masters"]),
        _binding("system:basic-user", "system:basic-user", groups=[authenticated]),
        _binding("system:discovery", "system:discovery", groups=[authenticated]),
        _binding("system:public-info-viewer", "system:public-info-viewer", groups=[authenticated, unauthenticated]),
        _binding("system:monitoring", "system:monitoring", groups=["system:monitoring"]),
        # What kubeadm binds for TLS bootstrapping: join tokens may file CSRs, and a kubelet-client CSR of a
        # new node (or the node's own renewal) may be auto-approved.
        _binding("system:node-bootstrapper", "system:node-bootstrapper", groups=["system:bootstrappers"]),
        _binding(csr_role + "nodeclient", csr_role + "nodeclient", groups=["system:bootstrappers"]),
        _binding(csr_role + "selfnodeclient", csr_role + "selfnodeclient", groups=["system:nodes"]),
        _binding("system:service-account-issuer-discovery", "system:service-account-issuer-discovery",
                 groups=["system:serviceaccounts"]),
    ]


def _selects(role: Obj, candidate: Obj) -> bool:
    labels = (candidate.get("metadata") or {}).get("labels") or {}
    for selector in ((role.get("aggregationRule") or {}).get("clusterRoleSelectors") or []):
        try:
            if label_selector_from_dict(selector).matches(labels):
                return True
        except SelectorError:
            continue
    return False


def aggregated_rules(role: Obj, cluster_roles: list[Obj]) -> list[Obj]:
    """The rules of an aggregated ClusterRole: the union, in name order, of the rules of the ClusterRoles its
    selectors match, following aggregated roles that are themselves selected (view → edit → admin)."""
    by_name = {r["metadata"]["name"]: r for r in cluster_roles}
    own = role["metadata"]["name"]
    rules: list[Obj] = []
    seen, pending = {own}, [own]
    while pending:
        current = by_name.get(pending.pop(0), role)
        for name in sorted(by_name):
            if name in seen or not _selects(current, by_name[name]):
                continue
            seen.add(name)
            candidate = by_name[name]
            if candidate.get("aggregationRule"):
                pending.append(name)  # its own rules are derived: take those of what it selects
                continue
            for rule in candidate.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
    return rules


def merged(existing: Obj, default: Obj) -> Obj:
    """The existing object with the default's missing rules/subjects, labels and annotations added."""
    result = {**existing, "metadata": dict(existing.get("metadata") or {})}
    meta = result["metadata"]
    for key in ("labels", "annotations"):
        meta[key] = {**(default["metadata"].get(key) or {}), **(meta.get(key) or {})}
    for key in ("rules", "subjects"):
        if key in default:
            current = list(existing.get(key) or [])
            result[key] = current + [item for item in default[key] if item not in current]
    if default.get("aggregationRule") and not existing.get("aggregationRule"):
        result["aggregationRule"] = default["aggregationRule"]
    return result


async def _ensure(registry: Any, default: Obj) -> Obj:
    name = default["metadata"]["name"]
    for _ in range(5):
        try:
            created = await registry.create("", default)
            log.info("created default rbac object kind=%s name=%s", default["kind"], name)
            return created
        except errors.APIError as exc:
            if exc.reason != "AlreadyExists":
                raise
        try:
            existing = await registry.get("", name)
        except errors.APIError as exc:
            if exc.code == 404:
                continue  # deleted meanwhile: create again
            raise
        if ((existing["metadata"].get("annotations") or {}).get(AUTOUPDATE)) == "false":
            return existing
        if default.get("roleRef") and existing.get("roleRef") != default["roleRef"]:
            # roleRef is immutable: upstream's reconciliation replaces the binding.
            await registry.delete("", name, DeleteOptions(precondition_uid=existing["metadata"]["uid"]))
            continue
        wanted = merged(existing, default)
        if wanted == existing:
            return existing
        try:
            return await registry.guaranteed_update("", name, lambda current: merged(current, default))
        except errors.APIError as exc:
            if exc.code != 404:
                raise
    raise errors.conflict(GROUP, registry.info.plural, name, "default kept changing during reconciliation")


async def reconcile(api: Any) -> None:
    """Create or complete every default ClusterRole and ClusterRoleBinding, then fill aggregated roles."""
    roles = api.registry(GROUP, "clusterroles")
    bindings = api.registry(GROUP, "clusterrolebindings")
    for role in default_cluster_roles():
        await _ensure(roles, role)
    for binding in default_cluster_role_bindings():
        await _ensure(bindings, binding)
    await aggregate(api)


async def aggregate(api: Any) -> None:
    """Write the aggregated rules of every ClusterRole with an aggregationRule (one pass of upstream's
    aggregation controller; apiserver/controllers/clusterrole_aggregation.py runs it on every ClusterRole change)."""
    registry = api.registry(GROUP, "clusterroles")
    cluster_roles, _ = await registry.list()
    for role in cluster_roles:
        if not role.get("aggregationRule"):
            continue
        rules = aggregated_rules(role, cluster_roles)
        if rules == (role.get("rules") or []):
            continue

        def set_rules(current: Obj, rules: list[Obj] = rules) -> Obj:
            current["rules"] = rules
            return current
        try:
            await registry.guaranteed_update("", role["metadata"]["name"], set_rules)
            log.info("aggregated cluster role name=%s rules=%d", role["metadata"]["name"], len(rules))
        except errors.APIError as exc:
            log.warning("aggregation failed name=%s error=%s", role["metadata"]["name"], exc)
