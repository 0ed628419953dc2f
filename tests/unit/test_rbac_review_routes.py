"""The review routes over HTTP (a bare aiohttp app whose middleware plays the authenticator), their
discovery entries, and the protobuf bodies kubectl sends."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from apiserver import errors, protobuf
from apiserver.api import API
from apiserver.auth import bootstrap_policy
from apiserver.auth.user import UserInfo
from apiserver.http import discovery
from apiserver.http.review_routes import ReviewRoutes
from apiserver.storage.sqlite import SQLiteStorage

USERS = {"admin": UserInfo("kubernetes-admin", ("system:masters", "system:authenticated")),
         "jane": UserInfo("jane", ("system:authenticated",))}
SSAR = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"


@web.middleware
async def as_user(request: web.Request, handler):
    """Stands in for the authentication middleware: X-Test-User names the requester."""
    if request.headers.get("X-Test-User") in USERS:
        request["user"] = USERS[request.headers["X-Test-User"]]
    try:
        return await handler(request)
    except errors.APIError as exc:
        return web.json_response(exc.status(), status=exc.code)


@pytest.fixture
async def client(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    await bootstrap_policy.reconcile(api)
    app = web.Application(middlewares=[as_user])
    ReviewRoutes(api).add_routes(app)
    client = TestClient(TestServer(app))
    await client.start_server()
    client.api = api
    yield client
    await client.close()
    await storage.close()


async def test_self_subject_access_review(client):
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
            "metadata": {"creationTimestamp": None},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}}
    response = await client.post(SSAR, json=body, headers={"X-Test-User": "jane"})
    assert response.status == 201
    answer = await response.json()
    assert answer["kind"] == "SelfSubjectAccessReview" and answer["spec"] == body["spec"]
    assert answer["status"] == {"allowed": False}
    # Discovery URLs are granted to every authenticated user by system:discovery.
    body["spec"] = {"nonResourceAttributes": {"path": "/apis/apps", "verb": "get"}}
    answer = await (await client.post(SSAR, json=body, headers={"X-Test-User": "jane"})).json()
    assert answer["status"]["allowed"] is True
    assert answer["status"]["reason"] == ('RBAC: allowed by ClusterRoleBinding "system:discovery" of ClusterRole '
                                          '"system:discovery" to Group "system:authenticated"')


async def test_reviews_are_create_only_and_need_a_user(client):
    assert (await client.get(SSAR, headers={"X-Test-User": "jane"})).status == 405
    anonymous = await client.post(SSAR, json={"spec": {"resourceAttributes": {"verb": "get"}}})
    assert anonymous.status == 401
    wrong_kind = await client.post(SSAR, json={"kind": "Pod"}, headers={"X-Test-User": "jane"})
    assert wrong_kind.status == 400


async def test_local_subject_access_review_and_whoami(client):
    path = "/apis/authorization.k8s.io/v1/namespaces/dev/localsubjectaccessreviews"
    review = {"spec": {"user": "kubernetes-admin", "groups": ["system:masters"],
                       "resourceAttributes": {"namespace": "dev", "verb": "delete", "resource": "secrets"}}}
    answer = await (await client.post(path, json=review, headers={"X-Test-User": "admin"})).json()
    assert answer["metadata"]["namespace"] == "dev"
    assert answer["status"]["allowed"] is True
    whoami = await client.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                               json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                               headers={"X-Test-User": "jane"})
    assert whoami.status == 201
    assert (await whoami.json())["status"]["userInfo"] == {"username": "jane", "groups": ["system:authenticated"]}


async def test_rules_review_needs_a_namespace(client):
    path = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
    missing = await client.post(path, json={"spec": {}}, headers={"X-Test-User": "jane"})
    assert missing.status == 400 and (await missing.json())["message"] == "no namespace on request"
    answer = await (await client.post(path, json={"spec": {"namespace": "default"}},
                                      headers={"X-Test-User": "jane"})).json()
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in answer["status"]["resourceRules"]


async def test_review_kinds_are_in_discovery(client):
    resources = client.api.resources()
    listing = discovery.api_resource_list(resources, "authorization.k8s.io", "v1")
    entries = {entry["name"]: entry for entry in listing["resources"]}
    assert set(entries) == {"localsubjectaccessreviews", "selfsubjectaccessreviews", "selfsubjectrulesreviews",
                            "subjectaccessreviews"}
    assert entries["selfsubjectaccessreviews"]["verbs"] == ["create"]
    assert entries["localsubjectaccessreviews"]["namespaced"] is True
    aggregated = discovery.aggregated_discovery(resources, False, "apidiscovery.k8s.io/v2")
    groups = {item["metadata"]["name"]: item for item in aggregated["items"]}
    assert [r["resource"] for r in groups["authentication.k8s.io"]["versions"][0]["resources"]] == \
        ["selfsubjectreviews", "tokenreviews"]
    assert "rbac.authorization.k8s.io" in groups


def _field(number: int, payload: bytes) -> bytes:
    return bytes([number << 3 | 2, len(payload)]) + payload


def test_protobuf_bodies_as_kubectl_sends_them():
    """`kubectl create rolebinding` and `kubectl auth can-i` use typed clients that send protobuf."""
    subject = _field(1, b"User") + _field(2, b"rbac.authorization.k8s.io") + _field(3, b"jane")
    role_ref = _field(1, b"rbac.authorization.k8s.io") + _field(2, b"Role") + _field(3, b"reader")
    binding = _field(1, _field(1, b"read") + _field(3, b"dev")) + _field(2, subject) + _field(3, role_ref)
    type_meta = _field(1, b"rbac.authorization.k8s.io/v1") + _field(2, b"RoleBinding")
    decoded = protobuf.decode_object(protobuf.MAGIC + _field(1, type_meta) + _field(2, binding))
    assert decoded == {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                       "metadata": {"name": "read", "namespace": "dev"},
                       "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}],
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"}}
    rule = _field(1, b"get") + _field(2, b"") + _field(3, b"pods")
    role = _field(1, _field(1, b"reader")) + _field(2, rule)
    type_meta = _field(1, b"rbac.authorization.k8s.io/v1") + _field(2, b"Role")
    decoded = protobuf.decode_object(protobuf.MAGIC + _field(1, type_meta) + _field(2, role))
    assert decoded["rules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    attributes = _field(1, b"dev") + _field(2, b"list") + _field(5, b"pods")
    type_meta = _field(1, b"authorization.k8s.io/v1") + _field(2, b"SelfSubjectAccessReview")
    review = _field(2, _field(1, attributes))  # spec.resourceAttributes
    decoded = protobuf.decode_object(protobuf.MAGIC + _field(1, type_meta) + _field(2, review))
    assert decoded["spec"] == {"resourceAttributes": {"namespace": "dev", "verb": "list", "resource": "pods"}}
