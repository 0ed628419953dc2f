"""RBAC kinds through a real API (SQLite in a temporary dir): validation, tables, the default policy, the
watch-fed authorizer, and the review kinds."""
from __future__ import annotations

import asyncio
import datetime

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.auth import bootstrap_policy, reviews
from apiserver.auth.authorizer import Attributes, UnionAuthorizer
from apiserver.auth.rbac_authorizer import RBACAuthorizer
from apiserver.auth.user import UserInfo
from apiserver.storage.sqlite import SQLiteStorage

GROUP = "rbac.authorization.k8s.io"
JANE = UserInfo("jane", ("system:authenticated",))


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    yield api
    await storage.close()


def registry(api, plural):
    return api.registry(GROUP, plural)


async def invalid(api, plural, body, namespace="") -> str:
    with pytest.raises(errors.APIError) as caught:
        await api.create(registry(api, plural), namespace, body)
    assert caught.value.code == 422, caught.value.message
    return caught.value.message


def binding(name, role_kind="ClusterRole", role="view", subjects=None):
    return {"metadata": {"name": name}, "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
            "subjects": subjects if subjects is not None else [{"kind": "User", "name": "jane"}]}


async def test_role_rules_are_validated(api):
    message = await invalid(api, "roles", {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""]}]}, "default")
    assert message == ('Role.rbac.authorization.k8s.io "r" is invalid: [rules[0].verbs: Required value: verbs must '
                       'contain at least one value, rules[0].resources: Required value: resource rules must supply '
                       'at least one resource]')
    message = await invalid(api, "roles", {"metadata": {"name": "r"},
                                           "rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]}, "default")
    assert 'rules[0].nonResourceURLs: Invalid value: []string{"/x"}: namespaced rules cannot apply to non-resource ' \
           'URLs' in message
    role = await api.create(registry(api, "clusterroles"), "", {
        "metadata": {"name": "system:probe"}, "rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]})
    assert role["metadata"]["name"] == "system:probe"  # colons are fine in RBAC names
    message = await invalid(api, "clusterroles", {"metadata": {"name": "agg"}, "aggregationRule": {}})
    assert "aggregationRule.clusterRoleSelectors: Required value" in message


async def test_binding_defaults_and_validation(api):
    created = await api.create(registry(api, "rolebindings"), "default", {
        "metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
        "subjects": [{"kind": "User", "name": "jane"}, {"kind": "ServiceAccount", "name": "default"}]})
    assert created["roleRef"]["apiGroup"] == GROUP
    assert created["subjects"][0]["apiGroup"] == GROUP
    assert "apiGroup" not in created["subjects"][1]
    message = await invalid(api, "clusterrolebindings", binding("c", role_kind="Role", subjects=[
        {"kind": "ServiceAccount", "name": "x"}, {"kind": "Robot", "name": "y"},
        {"kind": "Group", "apiGroup": "example.com", "name": "z"}]))
    assert message == ('ClusterRoleBinding.rbac.authorization.k8s.io "c" is invalid: [roleRef.kind: Unsupported '
                       'value: "Role": supported values: "ClusterRole", subjects[0].namespace: Required value, '
                       'subjects[1].kind: Unsupported value: "Robot": supported values: "ServiceAccount", "User", '
                       '"Group", subjects[2].apiGroup: Unsupported value: "example.com": supported values: '
                       '"rbac.authorization.k8s.io"]')
    message = await invalid(api, "rolebindings", {"metadata": {"name": "b2"},
                                                  "roleRef": {"apiGroup": "x.io", "kind": "Role", "name": ""}},
                            "default")
    assert 'roleRef.apiGroup: Unsupported value: "x.io"' in message and "roleRef.name: Required value" in message


async def test_role_ref_is_immutable(api):
    bindings = registry(api, "clusterrolebindings")
    created = await api.create(bindings, "", binding("b"))
    changed = {**created, "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "edit"}}
    with pytest.raises(errors.APIError) as caught:
        await api.update(bindings, "", "b", changed)
    assert caught.value.code == 422
    assert caught.value.message == (
        'ClusterRoleBinding.rbac.authorization.k8s.io "b" is invalid: roleRef: Invalid value: rbac.RoleRef{'
        'APIGroup:"rbac.authorization.k8s.io", Kind:"ClusterRole", Name:"edit"}: cannot change roleRef')
    subjects = {**created, "subjects": [{"kind": "Group", "name": "devs"}]}
    updated, _ = await api.update(bindings, "", "b", subjects)
    assert updated["subjects"] == [{"kind": "Group", "apiGroup": GROUP, "name": "devs"}]


async def test_binding_table_rows(api):
    bindings = registry(api, "rolebindings")
    obj = await api.create(bindings, "default", binding("b", subjects=[
        {"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"}, {"kind": "Group", "name": "devs"},
        {"kind": "ServiceAccount", "name": "ci", "namespace": "build"}]))
    spec = bindings.strategy.table(datetime.datetime.now(datetime.timezone.utc))
    assert [c.name for c in spec.columns] == ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    assert [c.priority for c in spec.columns] == [0, 0, 0, 1, 1, 1]
    cells = spec.row(obj).cells
    assert cells[:2] == ["b", "ClusterRole/view"]
    assert cells[3:] == ["jane, joe", "devs", "build/ci"]


async def test_default_policy_is_idempotent_and_concurrent(api):
    other = API(api.storage)  # a second server on the same store
    await asyncio.gather(bootstrap_policy.reconcile(api), bootstrap_policy.reconcile(other))
    await bootstrap_policy.reconcile(api)
    roles = registry(api, "clusterroles")
    admin = await roles.get("", "admin")
    assert admin["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
    assert admin["metadata"]["annotations"][bootstrap_policy.AUTOUPDATE] == "true"
    resources = {r for rule in admin["rules"] for r in rule.get("resources", [])}
    assert {"rolebindings", "pods", "deployments", "secrets", "endpointslices"} <= resources  # admin ⊇ edit ⊇ view
    view = await roles.get("", "view")
    assert "secrets" not in {r for rule in view["rules"] for r in rule.get("resources", [])}
    binding_names = {b["metadata"]["name"] for b in (await registry(api, "clusterrolebindings").list())[0]}
    assert {"cluster-admin", "system:basic-user", "system:discovery", "system:public-info-viewer",
            "system:node-bootstrapper"} <= binding_names


async def test_default_policy_restores_rules_unless_autoupdate_is_false(api):
    await bootstrap_policy.reconcile(api)
    roles = registry(api, "clusterroles")
    basic = await roles.get("", "system:basic-user")
    extra = {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]}
    await roles.update("", "system:basic-user", {**basic, "rules": [extra]})
    await bootstrap_policy.reconcile(api)
    restored = await roles.get("", "system:basic-user")
    assert restored["rules"][0] == extra and len(restored["rules"]) == 3  # kept the admin's rule, re-added two
    pinned = {**restored, "rules": [extra]}
    pinned["metadata"]["annotations"][bootstrap_policy.AUTOUPDATE] = "false"
    await roles.update("", "system:basic-user", pinned)
    await bootstrap_policy.reconcile(api)
    assert (await roles.get("", "system:basic-user"))["rules"] == [extra]


async def eventually(check, timeout=5.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.02)


async def test_authorizer_follows_watch_events(api):
    await bootstrap_policy.reconcile(api)
    authorizer = RBACAuthorizer(api)
    try:
        list_pods = Attributes(user=JANE, verb="list", namespace="dev", resource="pods")
        assert not (await authorizer.authorize(list_pods)).allowed
        await api.create(api.namespaces, "", {"metadata": {"name": "dev"}})
        await api.create(registry(api, "rolebindings"), "dev", {**binding("jane-view"), "metadata": {"name": "jv"}})

        async def allowed():
            return (await authorizer.authorize(list_pods)).allowed
        assert await eventually(allowed)
        verdict = await authorizer.authorize(list_pods)
        assert verdict.reason == 'RBAC: allowed by RoleBinding "jv/dev" of ClusterRole "view" to User "jane"'
        assert not (await authorizer.authorize(Attributes(user=JANE, verb="create", namespace="dev",
                                                          resource="pods"))).allowed
        discovery = Attributes(user=JANE, verb="get", path="/apis/apps/v1", resource_request=False)
        assert (await authorizer.authorize(discovery)).allowed  # system:discovery for system:authenticated
        await registry(api, "rolebindings").delete("dev", "jv")

        async def revoked():
            return not (await authorizer.authorize(list_pods)).allowed
        assert await eventually(revoked)
    finally:
        await authorizer.stop()


async def test_access_and_rules_reviews(api):
    await bootstrap_policy.reconcile(api)
    await api.create(api.namespaces, "", {"metadata": {"name": "dev"}})
    await api.create(registry(api, "roles"), "dev", {"metadata": {"name": "pod-reader"}, "rules": [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]})
    await api.create(registry(api, "rolebindings"), "dev", binding("read", "Role", "pod-reader"))
    rbac = RBACAuthorizer(api)
    union = UnionAuthorizer(rbac)
    try:
        await rbac.wait_synced()

        async def can(kind, spec, requester=JANE):
            info = {"SelfSubjectAccessReview": reviews.SELF_SUBJECT_ACCESS_REVIEW,
                    "SubjectAccessReview": reviews.SUBJECT_ACCESS_REVIEW}[kind]
            review = reviews.check_body({"apiVersion": "authorization.k8s.io/v1", "kind": kind,
                                         "metadata": {"creationTimestamp": None}, "spec": spec}, info)
            return (await reviews.access_review(review, requester, union))["status"]

        async def synced():
            return (await can("SelfSubjectAccessReview", {"resourceAttributes": {
                "namespace": "dev", "verb": "list", "resource": "pods"}}))["allowed"]
        assert await eventually(synced)
        denied = await can("SelfSubjectAccessReview", {"resourceAttributes": {"namespace": "dev", "verb": "delete",
                                                                              "resource": "pods"}})
        assert denied == {"allowed": False}
        admin = UserInfo("kubernetes-admin", ("system:masters",))
        status = await can("SubjectAccessReview", {"user": "jane", "resourceAttributes": {
            "namespace": "dev", "verb": "get", "resource": "pods"}}, admin)
        assert status["allowed"] and "RoleBinding \"read/dev\"" in status["reason"]
        with pytest.raises(errors.APIError) as caught:
            await can("SubjectAccessReview", {"resourceAttributes": {"verb": "get", "resource": "pods"}})
        assert caught.value.message == ('SubjectAccessReview.authorization.k8s.io "" is invalid: spec.user: Invalid '
                                        'value: "": at least one of user or group must be specified')
        with pytest.raises(errors.APIError) as caught:
            await can("SelfSubjectAccessReview", {})
        assert "exactly one of nonResourceAttributes or resourceAttributes must be specified" in caught.value.message

        local = reviews.check_body({"spec": {"user": "jane", "resourceAttributes": {"namespace": "prod",
                                                                                    "verb": "get"}}},
                                   reviews.LOCAL_SUBJECT_ACCESS_REVIEW, "dev")
        with pytest.raises(errors.APIError) as caught:
            await reviews.access_review(local, admin, union)
        assert "spec.resourceAttributes.namespace: Invalid value: \"prod\": must match metadata.namespace" in \
            caught.value.message

        rules = reviews.check_body({"spec": {"namespace": "dev"}}, reviews.SELF_SUBJECT_RULES_REVIEW)
        status = (await reviews.rules_review(rules, JANE, [rbac]))["status"]
        assert {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]} in status["resourceRules"]
        assert any("/api" in r["nonResourceURLs"] for r in status["nonResourceRules"])
        assert status["incomplete"] is False
    finally:
        await rbac.stop()


def test_self_subject_review_reports_the_requester():
    review = reviews.check_body({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                                reviews.SELF_SUBJECT_REVIEW)
    answer = reviews.self_subject_review(review, UserInfo("jane", ("devs", "system:authenticated"), "u-1"))
    assert answer["status"] == {"userInfo": {"username": "jane", "uid": "u-1",
                                             "groups": ["devs", "system:authenticated"]}}
    assert answer["kind"] == "SelfSubjectReview" and "spec" not in answer


async def test_aggregation_controller_follows_labelled_cluster_roles(api):
    from apiserver.controllers.manager import ControllerContext, start_controllers
    await bootstrap_policy.reconcile(api)
    tasks = start_controllers(ControllerContext(api), ["clusterrole-aggregation"])
    roles = registry(api, "clusterroles")
    crontabs = {"verbs": ["get"], "apiGroups": ["stable.example.com"], "resources": ["crontabs"]}
    try:
        await api.create(roles, "", {"metadata": {"name": "crontab-reader",
                                                  "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
                                     "rules": [crontabs]})

        async def aggregated_everywhere():
            return all([crontabs in (await roles.get("", name)).get("rules", []) for name in ("view", "edit", "admin")])
        assert await eventually(aggregated_everywhere)
        await roles.delete("", "crontab-reader")

        async def removed():
            return crontabs not in (await roles.get("", "admin")).get("rules", [])
        assert await eventually(removed)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
