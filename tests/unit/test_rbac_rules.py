"""RBAC rule matching and the binding index (pure, no storage)."""
from __future__ import annotations

from apiserver.auth.authorizer import Attributes, Decision
from apiserver.auth.rbac import PolicyRule, RBACIndex, authorize_from, rule_allows
from apiserver.auth.user import UserInfo

JANE = UserInfo("jane", ("devs", "system:authenticated"))
GROUP = "rbac.authorization.k8s.io"


def attrs(verb="get", resource="pods", namespace="dev", group="", subresource="", name="", user=JANE):
    return Attributes(user=user, verb=verb, namespace=namespace, api_group=group, resource=resource,
                      subresource=subresource, name=name)


def url(verb, path, user=JANE):
    return Attributes(user=user, verb=verb, path=path, resource_request=False)


def rule(**fields):
    return PolicyRule.from_dict(fields)


def test_verbs_groups_and_resources_must_all_match():
    pods_read = rule(verbs=["get", "list"], apiGroups=[""], resources=["pods"])
    assert rule_allows(attrs("get"), pods_read)
    assert rule_allows(attrs("list"), pods_read)
    assert not rule_allows(attrs("delete"), pods_read)
    assert not rule_allows(attrs("get", group="apps"), pods_read)
    assert not rule_allows(attrs("get", resource="secrets"), pods_read)


def test_wildcards():
    everything = rule(verbs=["*"], apiGroups=["*"], resources=["*"])
    assert rule_allows(attrs("deletecollection", "deployments", group="apps"), everything)
    assert rule_allows(attrs("get", "pods", subresource="log"), everything)
    # A resource rule never grants non-resource URLs.
    assert not rule_allows(url("get", "/healthz"), everything)


def test_subresources_match_only_when_named():
    pods = rule(verbs=["get"], apiGroups=[""], resources=["pods"])
    assert not rule_allows(attrs("get", subresource="log"), pods)
    assert rule_allows(attrs("get", subresource="log"), rule(verbs=["get"], apiGroups=[""], resources=["pods/log"]))
    any_status = rule(verbs=["update"], apiGroups=["*"], resources=["*/status"])
    assert rule_allows(attrs("update", "deployments", group="apps", subresource="status"), any_status)
    assert not rule_allows(attrs("update", "deployments", group="apps", subresource="scale"), any_status)
    assert not rule_allows(attrs("update", "deployments", group="apps"), any_status)


def test_resource_names_restrict_to_those_objects():
    one = rule(verbs=["get", "update"], apiGroups=[""], resources=["configmaps"], resourceNames=["app-config"])
    assert rule_allows(attrs("get", "configmaps", name="app-config"), one)
    assert not rule_allows(attrs("get", "configmaps", name="other"), one)
    assert not rule_allows(attrs("list", "configmaps"), one)  # a list has no name


def test_non_resource_urls_with_trailing_star():
    discovery = rule(verbs=["get"], nonResourceURLs=["/api", "/api/*", "/healthz"])
    assert rule_allows(url("get", "/api"), discovery)
    assert rule_allows(url("get", "/api/v1"), discovery)
    assert rule_allows(url("get", "/healthz"), discovery)
    assert not rule_allows(url("get", "/healthz/etcd"), discovery)
    assert not rule_allows(url("post", "/api"), discovery)
    assert not rule_allows(url("get", "/apis"), discovery)
    assert rule_allows(url("get", "/anything"), rule(verbs=["*"], nonResourceURLs=["*"]))
    # A non-resource rule never grants resources.
    assert not rule_allows(attrs("get"), rule(verbs=["*"], nonResourceURLs=["*"]))


def _role(kind, name, rules, namespace=""):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "rules": rules}


def _binding(kind, name, role_kind, role, subjects, namespace=""):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": meta, "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
            "subjects": subjects}


def _user(name):
    return {"kind": "User", "apiGroup": GROUP, "name": name}


READ_PODS = [{"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}]


def test_role_binding_grants_only_in_its_namespace():
    index = RBACIndex()
    index.apply("Role", "ADDED", _role("Role", "reader", READ_PODS, "dev"))
    index.apply("RoleBinding", "ADDED", _binding("RoleBinding", "read", "Role", "reader", [_user("jane")], "dev"))
    verdict = authorize_from(index, attrs("list"))
    assert verdict.decision is Decision.ALLOW
    assert verdict.reason == 'RBAC: allowed by RoleBinding "read/dev" of Role "reader" to User "jane"'
    assert authorize_from(index, attrs("list", namespace="default")).decision is Decision.NO_OPINION
    assert authorize_from(index, attrs("create")).decision is Decision.NO_OPINION
    other = UserInfo("bob")
    assert authorize_from(index, attrs("list", user=other)).decision is Decision.NO_OPINION


def test_deleting_a_binding_or_role_revokes():
    index = RBACIndex()
    role = _role("Role", "reader", READ_PODS, "dev")
    binding = _binding("RoleBinding", "read", "Role", "reader", [_user("jane")], "dev")
    index.apply("Role", "ADDED", role)
    index.apply("RoleBinding", "ADDED", binding)
    index.apply("Role", "DELETED", role)
    verdict = authorize_from(index, attrs("list"))
    assert verdict.decision is Decision.NO_OPINION
    assert verdict.reason == 'RBAC: role.rbac.authorization.k8s.io "reader" not found'
    index.apply("Role", "ADDED", role)
    assert authorize_from(index, attrs("list")).allowed
    index.apply("RoleBinding", "DELETED", binding)
    assert authorize_from(index, attrs("list")).reason == ""
    assert not authorize_from(index, attrs("list")).allowed


def test_modified_binding_replaces_its_subjects():
    index = RBACIndex()
    index.apply("ClusterRole", "ADDED", _role("ClusterRole", "reader", READ_PODS))
    index.apply("ClusterRoleBinding", "ADDED", _binding("ClusterRoleBinding", "read", "ClusterRole", "reader",
                                                        [_user("jane")]))
    assert authorize_from(index, attrs("get", namespace="anywhere")).allowed
    index.apply("ClusterRoleBinding", "MODIFIED", _binding("ClusterRoleBinding", "read", "ClusterRole", "reader",
                                                           [_user("bob")]))
    assert not authorize_from(index, attrs("get", namespace="anywhere")).allowed


def test_role_binding_to_cluster_role_is_namespaced_and_groups_match():
    index = RBACIndex()
    index.apply("ClusterRole", "ADDED", _role("ClusterRole", "view", READ_PODS))
    index.apply("RoleBinding", "ADDED", _binding("RoleBinding", "devs-view", "ClusterRole", "view",
                                                 [{"kind": "Group", "apiGroup": GROUP, "name": "devs"}], "dev"))
    verdict = authorize_from(index, attrs("watch"))
    assert verdict.reason == 'RBAC: allowed by RoleBinding "devs-view/dev" of ClusterRole "view" to Group "devs"'
    assert not authorize_from(index, attrs("watch", namespace="prod")).allowed
    # Cluster-scoped requests (no namespace) are not granted by role bindings.
    assert not authorize_from(index, attrs("list", namespace="")).allowed


def test_service_account_subjects_default_to_the_binding_namespace():
    index = RBACIndex()
    index.apply("ClusterRole", "ADDED", _role("ClusterRole", "view", READ_PODS))
    index.apply("RoleBinding", "ADDED", _binding("RoleBinding", "sa", "ClusterRole", "view",
                                                 [{"kind": "ServiceAccount", "name": "builder"}], "dev"))
    index.apply("ClusterRoleBinding", "ADDED", _binding(
        "ClusterRoleBinding", "sa-everywhere", "ClusterRole", "view",
        [{"kind": "ServiceAccount", "name": "robot", "namespace": "ops"}]))
    builder = UserInfo("system:serviceaccount:dev:builder", ("system:serviceaccounts",))
    verdict = authorize_from(index, attrs("get", user=builder))
    assert verdict.reason == ('RBAC: allowed by RoleBinding "sa/dev" of ClusterRole "view" to ServiceAccount '
                              '"builder/dev"')
    assert not authorize_from(index, attrs("get", user=UserInfo("system:serviceaccount:other:builder"))).allowed
    robot = UserInfo("system:serviceaccount:ops:robot")
    assert authorize_from(index, attrs("get", namespace="anywhere", user=robot)).allowed


def test_missing_roles_are_reported_together():
    index = RBACIndex()
    index.apply("ClusterRoleBinding", "ADDED", _binding("ClusterRoleBinding", "a", "ClusterRole", "gone",
                                                        [_user("jane")]))
    index.apply("RoleBinding", "ADDED", _binding("RoleBinding", "b", "Role", "missing", [_user("jane")], "dev"))
    verdict = authorize_from(index, attrs("get"))
    assert verdict.decision is Decision.NO_OPINION
    assert verdict.reason == ('RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, '
                              'role.rbac.authorization.k8s.io "missing" not found]')


def test_rules_round_trip_as_json():
    raw = {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]}
    assert PolicyRule.from_dict(raw).to_dict() == raw
    assert PolicyRule.from_dict({"verbs": ["get"], "nonResourceURLs": ["/x"]}).to_dict() == \
        {"verbs": ["get"], "nonResourceURLs": ["/x"]}
