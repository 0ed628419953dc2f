"""RBAC escalation prevention: rule coverage (pure) and the guard on role/binding writes (real API)."""
from __future__ import annotations

import asyncio

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.auth import bootstrap_policy, context
from apiserver.auth.escalation import compact_string, rule_covers, uncovered
from apiserver.auth.rbac import PolicyRule
from apiserver.auth.rbac_authorizer import RBACAuthorizer
from apiserver.auth.user import UserInfo
from apiserver.storage.sqlite import SQLiteStorage

GROUP = "rbac.authorization.k8s.io"


def rule(**fields):
    return PolicyRule.from_dict(fields)


def test_rule_coverage_as_upstream():
    owner = rule(verbs=["get", "list"], apiGroups=[""], resources=["pods", "*/status"])
    assert rule_covers(owner, rule(verbs=["get"], apiGroups=[""], resources=["pods"]))
    assert rule_covers(owner, rule(verbs=["list"], apiGroups=[""], resources=["deployments/status"]))
    assert not rule_covers(owner, rule(verbs=["delete"], apiGroups=[""], resources=["pods"]))
    assert not rule_covers(owner, rule(verbs=["get"], apiGroups=["apps"], resources=["pods"]))
    named = rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"])
    assert rule_covers(named, rule(verbs=["get"], apiGroups=[""], resources=["configmaps"], resourceNames=["a"]))
    assert not rule_covers(named, rule(verbs=["get"], apiGroups=[""], resources=["configmaps"]))
    urls = rule(verbs=["get"], nonResourceURLs=["/logs/*"])
    assert rule_covers(urls, rule(verbs=["get"], nonResourceURLs=["/logs/app"]))
    assert not rule_covers(urls, rule(verbs=["get"], nonResourceURLs=["/metrics"]))
    everything = rule(verbs=["*"], apiGroups=["*"], resources=["*"])
    assert rule_covers(everything, rule(verbs=["escalate"], apiGroups=["x.io"], resources=["a/b"]))
    assert not rule_covers(everything, rule(verbs=["get"], nonResourceURLs=["/healthz"]))


def test_uncovered_rules_are_broken_down_and_described():
    missing = uncovered([rule(verbs=["get"], apiGroups=[""], resources=["pods"])],
                        [rule(verbs=["get", "delete"], apiGroups=[""], resources=["pods", "secrets"])])
    assert [compact_string(r) for r in missing] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}']


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    await bootstrap_policy.reconcile(api)
    await api.create(api.namespaces, "", {"metadata": {"name": "dev"}})
    # jane administers namespace dev (ClusterRole admin through a RoleBinding), nothing else.
    await api.create(api.registry(GROUP, "rolebindings"), "dev", {
        "metadata": {"name": "jane-admin"}, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "User", "name": "jane"}]})
    rbac = RBACAuthorizer(api)
    await rbac.wait_synced()
    yield api
    context.set_user(None)
    await rbac.stop()
    await storage.close()


def as_user(name, *groups):
    context.set_user(UserInfo(name, (*groups, "system:authenticated")))


def binding(name, kind, role):
    return {"metadata": {"name": name}, "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role},
            "subjects": [{"kind": "User", "name": "bob"}]}


async def test_namespace_admin_grants_only_what_she_holds(api):
    roles, bindings = api.registry(GROUP, "roles"), api.registry(GROUP, "rolebindings")
    as_user("jane", "devs")
    await api.create(roles, "dev", {"metadata": {"name": "reader"}, "rules": [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})
    await api.create(bindings, "dev", binding("bob-reader", "Role", "reader"))
    await api.create(bindings, "dev", binding("bob-edit", "ClusterRole", "edit"))
    with pytest.raises(errors.APIError) as caught:
        await api.create(bindings, "dev", binding("bob-root", "ClusterRole", "cluster-admin"))
    assert caught.value.code == 403
    assert caught.value.message.startswith(
        'rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "jane" (groups=["devs" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n')
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in caught.value.message
    with pytest.raises(errors.APIError) as caught:
        await api.create(roles, "dev", {"metadata": {"name": "nodes"}, "rules": [
            {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["nodes"]}]})
    assert caught.value.code == 403
    assert caught.value.message.endswith('\n{APIGroups:[""], Resources:["nodes"], Verbs:["get" "delete"]}')
    with pytest.raises(errors.APIError) as caught:
        await api.create(bindings, "dev", binding("bob-ghost", "Role", "ghost"))
    assert caught.value.code == 404
    assert caught.value.message == 'role.rbac.authorization.k8s.io "ghost" not found'


async def test_escalate_and_bind_verbs_and_system_masters_skip_the_check(api):
    roles, bindings = api.registry(GROUP, "clusterroles"), api.registry(GROUP, "clusterrolebindings")
    as_user("kubernetes-admin", "system:masters")
    await api.create(roles, "", {"metadata": {"name": "binder"}, "rules": [
        {"verbs": ["bind"], "apiGroups": [GROUP], "resources": ["clusterroles"], "resourceNames": ["cluster-admin"]},
        {"verbs": ["create"], "apiGroups": [GROUP], "resources": ["clusterrolebindings"]}]})
    await api.create(bindings, "", {**binding("carol-binder", "ClusterRole", "binder"),
                                    "subjects": [{"kind": "User", "name": "carol"}]})
    index = roles.strategy.guard.index
    for _ in range(250):  # the binding reaches the index through the watch
        if any(source.binding.name == "carol-binder" for source in index.sources(UserInfo("carol"))):
            break
        await asyncio.sleep(0.02)
    as_user("carol")
    await api.create(bindings, "", binding("bob-root", "ClusterRole", "cluster-admin"))  # allowed by `bind`
    with pytest.raises(errors.APIError) as caught:
        await api.create(bindings, "", binding("bob-view", "ClusterRole", "view"))  # no bind on view, not held
    assert caught.value.code == 403
    context.set_user(None)  # the server's own loops
    await api.create(bindings, "", binding("internal", "ClusterRole", "cluster-admin"))


async def _bound(api, user, rules, name):
    """`user` gets `rules` cluster-wide (created by the admin); waits until the index has the binding."""
    as_user("kubernetes-admin", "system:masters")
    roles, bindings = api.registry(GROUP, "clusterroles"), api.registry(GROUP, "clusterrolebindings")
    await api.create(roles, "", {"metadata": {"name": name}, "rules": rules})
    await api.create(bindings, "", {**binding(name, "ClusterRole", name), "subjects": [{"kind": "User", "name": user}]})
    index = roles.strategy.guard.index
    for _ in range(250):
        if any(source.binding.name == name for source in index.sources(UserInfo(user))):
            break
        await asyncio.sleep(0.02)
    as_user(user)


AGGREGATING = {"metadata": {"name": "grab"}, "aggregationRule": {"clusterRoleSelectors": [
    {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]}, "rules": []}
WRITE_CLUSTERROLES = [{"verbs": ["get", "create", "update", "patch"], "apiGroups": [GROUP],
                       "resources": ["clusterroles"]}]


async def test_aggregation_rule_needs_escalate_or_full_authority(api):
    roles = api.registry(GROUP, "clusterroles")
    await _bound(api, "mallory", WRITE_CLUSTERROLES, "clusterrole-writer")
    with pytest.raises(errors.APIError) as caught:
        await api.create(roles, "", AGGREGATING)
    assert (caught.value.code, caught.value.message) == (
        403, 'clusterroles.rbac.authorization.k8s.io "grab" is forbidden: must have cluster-admin privileges to use '
             "the aggregationRule")
    await api.create(roles, "", {"metadata": {"name": "plain"}, "rules": []})  # no aggregationRule: fine
    with pytest.raises(errors.APIError) as caught:
        await api.patch(roles, "", "plain", "application/merge-patch+json",
                        {"aggregationRule": AGGREGATING["aggregationRule"]})
    assert caught.value.code == 403 and caught.value.message.endswith("to use the aggregationRule")
    as_user("kubernetes-admin", "system:masters")
    await api.create(roles, "", {"metadata": {"name": "gathers-nothing"}, "rules": [], "aggregationRule": {
        "clusterRoleSelectors": [{"matchLabels": {"nobody": "has-this"}}]}})
    as_user("mallory")
    with pytest.raises(errors.APIError) as caught:  # removing one from a role that has it is a change too
        await api.patch(roles, "", "gathers-nothing", "application/merge-patch+json", {"aggregationRule": None})
    assert caught.value.code == 403 and caught.value.message.endswith("to use the aggregationRule")
    with pytest.raises(errors.APIError) as caught:  # any other change of an aggregating role too (as upstream)
        await api.patch(roles, "", "gathers-nothing", "application/merge-patch+json",
                        {"metadata": {"labels": {"team": "a"}}})
    assert caught.value.code == 403 and caught.value.message.endswith("to use the aggregationRule")

    await _bound(api, "erin", [*WRITE_CLUSTERROLES, {"verbs": ["escalate"], "apiGroups": [GROUP],
                                                     "resources": ["clusterroles"]}], "clusterrole-escalator")
    await api.create(roles, "", AGGREGATING)  # `escalate` skips every check, as upstream
    await _bound(api, "root", [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                               {"verbs": ["*"], "nonResourceURLs": ["*"]}], "root-everything")
    await api.create(roles, "", {**AGGREGATING, "metadata": {"name": "grab2"}})  # full authority
