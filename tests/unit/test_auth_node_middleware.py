"""The auth middleware on prepared requests (no sockets): exempt paths, 401, impersonation, the second
`create` check of a websocket exec, NodeRestriction for nodes only, and the user handed to handlers."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from apiserver import errors
from apiserver.auth import context
from apiserver.auth.authentication import Authenticator
from apiserver.auth.authorizer import Attributes, Decision, Verdict
from apiserver.auth.middleware import AuthMiddleware
from apiserver.auth.user import AUTHENTICATED, UserInfo

ALICE_CERT = {"subject": ((("organizationName", "dev"),), (("commonName", "alice"),)),
              "notAfter": "Jan  1 00:00:00 2100 GMT"}
EXPIRED_CERT = {"subject": ((("commonName", "old"),),), "notAfter": "Jan  1 00:00:00 2000 GMT"}


class Transport:
    def __init__(self, peercert):
        self.peercert = peercert

    def get_extra_info(self, key):
        return self.peercert if key == "peercert" else None


class Request(dict):
    def __init__(self, method, path, peercert=None, headers=(), query=()):
        super().__init__()
        self.method, self.path = method, path
        self.transport = Transport(peercert or {})
        self.headers = CIMultiDictProxy(CIMultiDict(headers))
        self.query = MultiDictProxy(MultiDict(query))


class Recorder:
    """An authorizer allowing what `allowed(attributes)` says, remembering what it was asked."""

    def __init__(self, allowed=lambda a: True):
        self.allowed = allowed
        self.asked: list[Attributes] = []

    async def authorize(self, attributes):
        self.asked.append(attributes)
        return Verdict(Decision.ALLOW) if self.allowed(attributes) else Verdict(Decision.NO_OPINION, "nope")


class NoPods:
    def bound_node(self, namespace, name):
        raise AssertionError("NodeRestriction consulted for a non-node user")


def middleware(authorizer, tokens=None):
    return AuthMiddleware(None, Authenticator(None, tokens), authorizer, NoPods()).middleware


async def handler(request):
    return (request["user"], context.current_user())


async def ok(request):
    return "ok"


async def test_health_and_ca_paths_need_nothing():
    authorizer = Recorder()
    for path in ("/healthz", "/livez", "/readyz", "/cacerts"):
        assert await middleware(authorizer)(Request("GET", path), ok) == "ok"
    assert authorizer.asked == []


async def test_no_credentials_expired_certificate_or_unknown_token_is_401():
    for request in (Request("GET", "/api/v1/pods"), Request("GET", "/api/v1/pods", EXPIRED_CERT),
                    Request("GET", "/api/v1/pods", headers=[("Authorization", "Bearer nope")])):
        with pytest.raises(errors.APIError) as refused:
            await middleware(Recorder())(request, handler)
        assert refused.value.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                          "message": "Unauthorized", "reason": "Unauthorized", "code": 401}


async def test_certificate_and_token_users_reach_the_handler():
    user, current = await middleware(Recorder())(Request("GET", "/api/v1/pods", ALICE_CERT), handler)
    assert user == current == UserInfo("alice", ("dev", AUTHENTICATED))
    tokens = {"t0k3n": UserInfo("bob", ("ops",), "uid-b")}
    user, _ = await middleware(Recorder(), tokens)(
        Request("GET", "/api/v1/pods", headers=[("Authorization", "Bearer t0k3n")]), handler)
    assert user == UserInfo("bob", ("ops", AUTHENTICATED), "uid-b")


async def test_denied_is_403_and_impersonation_replaces_the_user():
    authorizer = Recorder(lambda a: a.verb == "impersonate" or a.user.name == "bob")
    request = Request("DELETE", "/api/v1/namespaces/ns/pods/p", ALICE_CERT, headers=[("Impersonate-User", "bob")])
    user, _ = await middleware(authorizer)(request, handler)
    assert user.name == "bob" and [a.verb for a in authorizer.asked] == ["impersonate", "delete"]
    with pytest.raises(errors.APIError) as denied:
        await middleware(authorizer)(Request("DELETE", "/api/v1/namespaces/ns/pods/p", ALICE_CERT), handler)
    assert denied.value.code == 403 and denied.value.message == (
        'pods "p" is forbidden: User "alice" cannot delete resource "pods" in API group "" in the namespace "ns": nope')


async def test_websocket_exec_also_needs_create():
    authorizer = Recorder(lambda a: a.verb == "get")
    with pytest.raises(errors.APIError) as denied:
        await middleware(authorizer)(Request("GET", "/api/v1/namespaces/ns/pods/p/exec", ALICE_CERT), handler)
    assert [a.verb for a in authorizer.asked] == ["get", "create"] and "cannot create" in denied.value.message


async def test_attributes_are_per_user():
    authorizer = Recorder()
    serve = middleware(authorizer, {"t": UserInfo("bob")})
    await serve(Request("GET", "/api/v1/pods", ALICE_CERT), handler)
    await serve(Request("GET", "/api/v1/pods", headers=[("Authorization", "Bearer t")]), handler)
    await serve(Request("GET", "/api/v1/pods", ALICE_CERT, query=[("watch", "true")]), handler)
    assert [(a.user.name, a.verb) for a in authorizer.asked] == [("alice", "list"), ("bob", "list"),
                                                                  ("alice", "watch")]
