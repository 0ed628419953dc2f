"""A ClusterRole's aggregationRule is an escalation: the aggregation controller copies into the role every rule
of the ClusterRoles its selectors match. A user who may write ClusterRoles (but not `escalate` them) used to
point a role she is bound to at `aggregate-to-admin` and receive admin's rules. Now setting, changing or
removing an aggregationRule without `escalate` needs `*` on everything, on every write path (POST, PUT,
merge PATCH, server-side apply): 403 `must have cluster-admin privileges to use the aggregationRule`."""
from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

GROUP = "rbac.authorization.k8s.io"
CLUSTERROLES = f"/apis/{GROUP}/v1/clusterroles"
SELECT_ADMIN = {"clusterRoleSelectors": [{"matchLabels": {f"{GROUP}/aggregate-to-admin": "true"}}]}
FORBIDDEN = 'clusterroles.{group} "{name}" is forbidden: must have cluster-admin privileges to use the aggregationRule'


@pytest.fixture(scope="module")
def server(module_server: Server) -> Server:
    return module_server


def manifest(*objects: dict) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})


def cluster_role(name: str, rules: list, **extra) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": {"name": name}, "rules": rules, **extra}


def as_mallory(server: Server, method: str, path: str, body: dict) -> tuple[int, dict]:
    """The admin's TLS, impersonating mallory (the server authorizes and checks escalation as her)."""
    request = urllib.request.Request(server.url + path, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", "Impersonate-User": "mallory"})
    try:
        with server.urlopen(request) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_aggregation_rule_without_escalate_is_refused_and_grants_nothing(server):
    kubectl = server.kubectl
    kubectl("create", "namespace", "team")
    # mallory may write ClusterRoles (not escalate them) and is bound in `team` to the empty ClusterRole team-extra
    kubectl("apply", "-f", "-", input=manifest(
        cluster_role("clusterrole-writer", [{"apiGroups": [GROUP], "resources": ["clusterroles"],
                                             "verbs": ["get", "list", "watch", "create", "update", "patch"]}]),
        {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "mallory-writes-roles"},
         "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "clusterrole-writer"},
         "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "mallory"}]},
        cluster_role("team-extra", []),
        {"apiVersion": f"{GROUP}/v1", "kind": "RoleBinding", "metadata": {"name": "mallory-extra", "namespace": "team"},
         "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "team-extra"},
         "subjects": [{"apiGroup": GROUP, "kind": "User", "name": "mallory"}]}))
    wait_for(lambda: kubectl("auth", "can-i", "patch", "clusterroles", "--as", "mallory", check=False)
             .stdout.strip() == "yes" or None, what="mallory's ClusterRole permissions")

    # POST: a new role gathering admin's rules
    code, status = as_mallory(server, "POST", CLUSTERROLES, cluster_role("grab", [], aggregationRule=SELECT_ADMIN))
    assert code == 403, status
    assert (code, status["reason"], status["message"]) == (403, "Forbidden", FORBIDDEN.format(group=GROUP,
                                                                                                 name="grab"))
    assert status["details"] == {"name": "grab", "group": GROUP, "kind": "clusterroles"}
    created = kubectl("create", "-f", "-", "--as", "mallory", check=False,
                      input=json.dumps(cluster_role("grab", [], aggregationRule=SELECT_ADMIN)))
    assert created.returncode != 0
    assert f'Error from server (Forbidden): error when creating "STDIN": {FORBIDDEN.format(group=GROUP, name="grab")}' \
        in created.stderr, created.stderr

    # merge PATCH, PUT and server-side apply of the role she is bound to
    expected = FORBIDDEN.format(group=GROUP, name="team-extra")
    patched = kubectl("patch", "clusterrole", "team-extra", "--type=merge", "--as", "mallory",
                      "-p", json.dumps({"aggregationRule": SELECT_ADMIN}), check=False)
    assert patched.returncode != 0 and expected in patched.stderr, patched.stderr
    current = json.loads(kubectl("get", "clusterrole", "team-extra", "-o", "json").stdout)
    code, status = as_mallory(server, "PUT", f"{CLUSTERROLES}/team-extra", {**current, "aggregationRule": SELECT_ADMIN})
    assert (code, status["message"]) == (403, expected), status
    replaced = kubectl("replace", "-f", "-", "--as", "mallory", check=False,
                       input=json.dumps({**current, "aggregationRule": SELECT_ADMIN}))
    assert replaced.returncode != 0 and expected in replaced.stderr, replaced.stderr
    applied = kubectl("apply", "--server-side", "-f", "-", "--as", "mallory", check=False,
                      input=json.dumps(cluster_role("team-extra", [], aggregationRule=SELECT_ADMIN)))
    assert applied.returncode != 0 and expected in applied.stderr, applied.stderr

    # let the aggregation controller run (a new aggregate-to-admin role reaches `admin`), then: nothing gained
    kubectl("apply", "-f", "-", input=json.dumps(cluster_role(
        "widgets-admin", [{"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get"]}],
        metadata={"name": "widgets-admin", "labels": {f"{GROUP}/aggregate-to-admin": "true"}})))

    def admin_has_widgets():
        admin = json.loads(kubectl("get", "clusterrole", "admin", "-o", "json").stdout)
        return any("widgets" in (rule.get("resources") or []) for rule in admin.get("rules") or []) or None
    wait_for(admin_has_widgets, timeout=20, what="the aggregation controller to fill admin")
    time.sleep(1)
    assert kubectl("get", "clusterrole", "grab", check=False).returncode != 0
    extra = json.loads(kubectl("get", "clusterrole", "team-extra", "-o", "json").stdout)
    assert "aggregationRule" not in extra and not extra.get("rules"), extra
    for verb, resource in (("create", "secrets"), ("get", "secrets"), ("create", "rolebindings")):
        answer = kubectl("auth", "can-i", verb, resource, "-n", "team", "--as", "mallory", check=False)
        assert answer.stdout.strip() == "no", (verb, resource, answer.stdout, answer.stderr)
    code, review = as_mallory(server, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "team", "verb": "get", "resource": "secrets"}}})
    assert code == 201 and review["status"]["allowed"] is False, review
