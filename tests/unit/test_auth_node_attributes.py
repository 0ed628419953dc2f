"""Request → authorizer Attributes (verbs, namespaces, names), token file parsing, certificate subjects,
impersonation headers, and upstream's 403 sentences: pure functions."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict

from apiserver.auth import impersonation
from apiserver.auth.attributes import forbidden, name_from_field_selector, request_attributes
from apiserver.auth.authentication import (bearer_token, certificate_subject, parse_token_file,
                                           with_authenticated)
from apiserver.auth.authorizer import Attributes
from apiserver.auth.user import AUTHENTICATED, UserInfo

ALICE = UserInfo("alice", ("dev", AUTHENTICATED))


@pytest.mark.parametrize("method,path,query,verb,namespace,resource,subresource,name", [
    ("GET", "/api/v1/namespaces/default/pods", {}, "list", "default", "pods", "", ""),
    ("GET", "/api/v1/namespaces/default/pods/web", {}, "get", "default", "pods", "", "web"),
    ("GET", "/api/v1/pods", {"watch": "true"}, "watch", "", "pods", "", ""),
    ("GET", "/api/v1/pods", {"watch": "1"}, "watch", "", "pods", "", ""),
    ("GET", "/api/v1/namespaces/ns/secrets", {"fieldSelector": "metadata.name=token"}, "list", "ns", "secrets",
     "", "token"),
    ("GET", "/api/v1/namespaces/ns/secrets", {"watch": "true", "fieldSelector": "metadata.name==s1,type=x"},
     "watch", "ns", "secrets", "", "s1"),
    ("POST", "/api/v1/namespaces/default/pods", {}, "create", "default", "pods", "", ""),
    ("PUT", "/api/v1/nodes/n1", {}, "update", "", "nodes", "", "n1"),
    ("PATCH", "/api/v1/nodes/n1/status", {}, "patch", "", "nodes", "status", "n1"),
    ("PATCH", "/api/v1/namespaces/default/pods/web/status", {}, "patch", "default", "pods", "status", "web"),
    ("DELETE", "/api/v1/namespaces/default/pods/web", {}, "delete", "default", "pods", "", "web"),
    ("DELETE", "/api/v1/namespaces/default/pods", {}, "deletecollection", "default", "pods", "", ""),
    ("POST", "/api/v1/namespaces/default/pods/web/eviction", {}, "create", "default", "pods", "eviction", "web"),
    ("GET", "/api/v1/namespaces/kube-system", {}, "get", "kube-system", "namespaces", "", "kube-system"),
    ("PUT", "/api/v1/namespaces/gone/finalize", {}, "update", "gone", "namespaces", "finalize", "gone"),
    ("GET", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {}, "get", "kube-node-lease",
     "leases", "", "n1"),
])
def test_resource_request_attributes(method, path, query, verb, namespace, resource, subresource, name):
    attrs = request_attributes(ALICE, method, path, query)
    assert attrs.resource_request
    assert (attrs.verb, attrs.namespace, attrs.resource, attrs.subresource, attrs.name) == \
           (verb, namespace, resource, subresource, name)
    assert attrs.user is ALICE and attrs.path == path


def test_group_and_version_come_from_the_path():
    attrs = request_attributes(ALICE, "GET", "/apis/apps/v1/namespaces/x/deployments", {})
    assert (attrs.api_group, attrs.api_version, attrs.resource) == ("apps", "v1", "deployments")


@pytest.mark.parametrize("method,path,verb", [
    ("GET", "/version", "get"), ("GET", "/api", "get"), ("GET", "/apis/apps/v1", "get"),
    ("GET", "/metrics", "get"), ("POST", "/openapi/v2", "post"),
])
def test_non_resource_requests_use_the_lower_cased_method(method, path, verb):
    attrs = request_attributes(ALICE, method, path, {})
    assert not attrs.resource_request and attrs.verb == verb and attrs.path == path


def test_field_selector_names_only_equality_on_metadata_name():
    assert name_from_field_selector("metadata.name=a") == "a"
    assert name_from_field_selector("spec.nodeName=n1,metadata.name==b") == "b"
    assert name_from_field_selector("metadata.name!=a") == ""
    assert name_from_field_selector("") == ""


def test_forbidden_messages_have_upstreams_shape():
    node = UserInfo("system:node:n2", ("system:nodes",))
    attrs = request_attributes(node, "PATCH", "/api/v1/namespaces/default/pods/x/status", {})
    status = forbidden(attrs, "no way").status()
    assert status == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": 'pods "x" is forbidden: User "system:node:n2" cannot patch resource "pods/status" '
                                 'in API group "" in the namespace "default": no way',
                      "reason": "Forbidden", "details": {"name": "x", "kind": "pods"}, "code": 403}
    cluster = forbidden(request_attributes(ALICE, "GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {}), "")
    assert cluster.message == ('clusterroles.rbac.authorization.k8s.io is forbidden: User "alice" cannot list '
                               'resource "clusterroles" in API group "rbac.authorization.k8s.io" at the cluster scope')
    path = forbidden(request_attributes(ALICE, "GET", "/metrics", {}), "")
    assert path.code == 403 and path.message == 'forbidden: User "alice" cannot get path "/metrics"'


# authentication ---------------------------------------------------------------------------------
def test_token_file_is_upstreams_csv():
    tokens = parse_token_file('t1,alice,uid-1,"dev,ops"\n\nt2,bob,uid-2\n,nobody,uid-3\nt1,carol,uid-4,x\n')
    assert tokens["t1"] == UserInfo("carol", ("x",), "uid-4")  # a repeated token: the last line wins
    assert tokens["t2"] == UserInfo("bob", (), "uid-2")
    assert "" not in tokens and len(tokens) == 2
    assert parse_token_file('t1,alice,uid-1,"dev,ops"\n')["t1"].groups == ("dev", "ops")


def test_token_file_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="must have at least 3 columns"):
        parse_token_file("t1,alice\n", "/etc/tokens.csv")
    with pytest.raises(ValueError, match="tokens.csv"):
        parse_token_file('t1,"alice\n', "/etc/tokens.csv")


def test_certificate_subject_from_the_peercert_dict():
    peercert = {"subject": ((("organizationName", "system:nodes"),), (("organizationName", "extra"),),
                            (("commonName", "system:node:n1"),))}
    assert certificate_subject(peercert) == ("system:node:n1", ("system:nodes", "extra"))
    assert certificate_subject({}) == ("", ())


def test_bearer_token_parsing():
    assert bearer_token("Bearer abc.def") == "abc.def"
    assert bearer_token("bearer  abc ") == "abc"
    assert bearer_token("Basic dXNlcjpwYXNz") == ""
    assert bearer_token("Bearer") == ""


def test_every_authenticated_user_is_in_system_authenticated():
    assert with_authenticated(UserInfo("a", ("g",))).groups == ("g", AUTHENTICATED)
    assert with_authenticated(UserInfo("a", (AUTHENTICATED,))).groups == (AUTHENTICATED,)


# impersonation ----------------------------------------------------------------------------------
def test_impersonation_headers_and_the_checks_they_need():
    headers = CIMultiDict([("Impersonate-User", "bob"), ("Impersonate-Group", "g1"), ("Impersonate-Group", "g2"),
                           ("Impersonate-Uid", "u-1"), ("Impersonate-Extra-Scopes%2Fa", "read")])
    wanted = impersonation.parse_headers(headers)
    assert wanted == impersonation.Request("bob", ("g1", "g2"), "u-1", (("scopes/a", "read"),))
    needed = [(a.verb, a.api_group, a.resource, a.subresource, a.name) for a in impersonation.checks(ALICE, wanted)]
    assert needed == [("impersonate", "", "users", "", "bob"), ("impersonate", "", "groups", "", "g1"),
                      ("impersonate", "", "groups", "", "g2"),
                      ("impersonate", "authentication.k8s.io", "userextras", "scopes/a", "read"),
                      ("impersonate", "authentication.k8s.io", "uids", "", "u-1")]
    user = impersonation.impersonated_user(wanted)
    assert user == UserInfo("bob", ("g1", "g2", AUTHENTICATED), "u-1")
    assert user.extra == {"scopes/a": ("read",)}


def test_impersonating_a_service_account_checks_serviceaccounts_and_adds_its_groups():
    wanted = impersonation.parse_headers(CIMultiDict([("Impersonate-User", "system:serviceaccount:ns1:robot")]))
    [check] = impersonation.checks(ALICE, wanted)
    assert (check.resource, check.namespace, check.name) == ("serviceaccounts", "ns1", "robot")
    assert impersonation.impersonated_user(wanted).groups == ("system:serviceaccounts", "system:serviceaccounts:ns1",
                                                              AUTHENTICATED)


class _Allow:
    def __init__(self, allowed: set[tuple[str, str]]):
        self.allowed = allowed
        self.asked: list[Attributes] = []

    async def authorize(self, attributes):
        from apiserver.auth.authorizer import Decision, Verdict
        self.asked.append(attributes)
        ok = (attributes.resource, attributes.name) in self.allowed
        return Verdict(Decision.ALLOW if ok else Decision.NO_OPINION, "" if ok else "not bound")


async def test_impersonate_needs_every_permission():
    headers = CIMultiDict([("Impersonate-User", "system:node:n1"), ("Impersonate-Group", "system:nodes")])
    wanted = impersonation.parse_headers(headers)
    user = await impersonation.impersonate(ALICE, wanted, _Allow({("users", "system:node:n1"),
                                                                   ("groups", "system:nodes")}))
    assert user.node_name == "n1"
    with pytest.raises(Exception) as denied:
        await impersonation.impersonate(ALICE, wanted, _Allow({("users", "system:node:n1")}))
    assert denied.value.code == 403
    assert denied.value.message == ('groups "system:nodes" is forbidden: User "alice" cannot impersonate resource '
                                    '"groups" in API group "" at the cluster scope: not bound')
    assert impersonation.parse_headers(CIMultiDict([("Accept", "x")])) == impersonation.NO_IMPERSONATION
    assert await impersonation.impersonate(ALICE, impersonation.NO_IMPERSONATION, _Allow(set())) is ALICE


async def test_impersonating_groups_without_a_user_is_refused():
    with pytest.raises(Exception) as refused:
        wanted = impersonation.parse_headers(CIMultiDict([("Impersonate-Group", "g")]))
        await impersonation.impersonate(ALICE, wanted, _Allow(set()))
    assert refused.value.code == 500 and "without impersonating a user" in refused.value.message
