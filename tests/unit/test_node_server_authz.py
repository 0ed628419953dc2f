"""The node server's request → SubjectAccessReview attributes mapping and its decision cache (authz.py), and
the API server letting a node create those reviews."""
from __future__ import annotations

import pytest

from agent.node_server.authz import (AuthorizationError, DecisionCache, NodeAttributes, Subject, WebhookAuthorizer,
                                     api_verb, certificate_subject, forbidden_message, request_attributes,
                                     review_allowed, review_body, subresources)
from apiserver.auth.authorizer import Attributes, Decision
from apiserver.auth.node_authorizer import NodeAuthorizer
from apiserver.auth.node_restriction import admit_request
from apiserver.auth.user import AUTHENTICATED, SYSTEM_NODES, UserInfo
from shipmate import pki

NODE = "n1"
OTHER = Subject("system:node:n2", ("system:nodes", "system:authenticated"))


@pytest.mark.parametrize("method, verb", [("GET", "get"), ("HEAD", "get"), ("POST", "create"), ("PUT", "update"),
                                          ("PATCH", "patch"), ("DELETE", "delete"), ("get", "get"),
                                          ("OPTIONS", "")])
def test_http_method_maps_to_api_verb(method: str, verb: str) -> None:
    assert api_verb(method) == verb


@pytest.mark.parametrize("path, expected", [
    ("/stats", ("stats",)), ("/stats/summary", ("stats",)), ("/stats/", ("stats",)),
    ("/metrics", ("metrics",)), ("/metrics/cadvisor", ("metrics",)), ("/metrics/probes", ("metrics",)),
    ("/logs/", ("log",)), ("/logs/messages", ("log",)),
    ("/spec", ("spec",)), ("/checkpoint/ns/pod/c", ("checkpoint",)),
    ("/exec/ns/pod/c", ("proxy",)), ("/attach/ns/pod/c", ("proxy",)), ("/portforward/ns/pod", ("proxy",)),
    ("/run/ns/pod/c", ("proxy",)), ("/containerLogs/ns/pod/c", ("proxy",)), ("/", ("proxy",)),
    ("/pods", ("pods", "proxy")), ("/runningpods/", ("pods", "proxy")), ("/healthz", ("healthz", "proxy")),
    ("/healthz/ping", ("healthz", "proxy")), ("/configz", ("configz", "proxy")), ("/statusz", ("statusz", "proxy")),
    # A prefix only counts at a path segment boundary.
    ("/metricsfoo", ("proxy",)), ("/statsx/summary", ("proxy",)), ("/healthzz", ("proxy",)),
    ("/logsdir", ("proxy",)),
])
def test_path_maps_to_subresources_in_order(path: str, expected: tuple[str, ...]) -> None:
    assert subresources(path) == expected


def test_request_attributes_name_the_node_and_the_verb() -> None:
    attributes = request_attributes(OTHER, "POST", "/exec/default/web/app", NODE)
    assert attributes == [NodeAttributes(OTHER, "create", NODE, "proxy")]
    assert [a.subresource for a in request_attributes(OTHER, "GET", "/healthz", NODE)] == ["healthz", "proxy"]


def test_review_body_is_a_v1_subject_access_review_on_the_node() -> None:
    body = review_body(NodeAttributes(OTHER, "get", NODE, "metrics"))
    assert body == {
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:node:n2", "groups": ["system:nodes", "system:authenticated"],
                 "resourceAttributes": {"verb": "get", "group": "", "version": "v1", "resource": "nodes",
                                        "subresource": "metrics", "name": NODE}}}
    assert "groups" not in review_body(NodeAttributes(Subject("jane", ()), "get", NODE, "proxy"))["spec"]


def test_forbidden_message_matches_kubelet() -> None:
    single = request_attributes(OTHER, "POST", "/exec/ns/p/c", NODE)
    assert forbidden_message(single) == "Forbidden (user=system:node:n2, verb=create, resource=nodes, subresource=proxy)"
    both = request_attributes(OTHER, "GET", "/healthz", NODE)
    assert forbidden_message(both) == ("Forbidden (user=system:node:n2, verb=get, resource=nodes, "
                                       "subresource(s)=[healthz proxy])")


def test_review_allowed_reads_status() -> None:
    assert review_allowed({"status": {"allowed": True}})
    assert not review_allowed({"status": {"allowed": False}})
    assert not review_allowed({"status": {"allowed": True, "denied": True}})
    with pytest.raises(AuthorizationError):
        review_allowed({"kind": "SubjectAccessReview"})


def test_certificate_subject_is_cn_and_organizations() -> None:
    ca_cert, ca_key = pki.make_ca("test-ca")
    cert, _key = pki.issue(ca_cert, ca_key, "system:node:n2", ["system:nodes"], client=True)
    assert certificate_subject(cert) == Subject("system:node:n2", ("system:nodes", "system:authenticated"))
    cert, _key = pki.issue(ca_cert, ca_key, "jane", ["system:authenticated"], client=True)
    assert certificate_subject(cert) == Subject("jane", ("system:authenticated",))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_keeps_allowed_for_five_minutes_and_denied_for_thirty_seconds() -> None:
    clock = Clock()
    cache = DecisionCache(clock=clock)
    allowed, denied = NodeAttributes(OTHER, "get", NODE, "metrics"), NodeAttributes(OTHER, "create", NODE, "proxy")
    cache.put(allowed, True)
    cache.put(denied, False)
    clock.now += 29.9
    assert cache.get(allowed) is True and cache.get(denied) is False
    clock.now += 0.1
    assert cache.get(denied) is None and cache.get(allowed) is True
    clock.now += 270
    assert cache.get(allowed) is None
    assert len(cache) == 0


def test_cache_drops_the_oldest_beyond_its_size() -> None:
    cache = DecisionCache(max_entries=2, clock=Clock())
    entries = [NodeAttributes(Subject(f"u{i}", ()), "get", NODE, "proxy") for i in range(3)]
    for entry in entries:
        cache.put(entry, True)
    assert cache.get(entries[0]) is None and cache.get(entries[1]) and cache.get(entries[2])


class Reviews:
    """A fake API server: allows what `grants` lists as (user, verb, subresource)."""

    def __init__(self, grants: set[tuple[str, str, str]], fail: bool = False) -> None:
        self.grants, self.fail, self.sent = grants, fail, []

    async def __call__(self, body: dict) -> dict:
        self.sent.append(body)
        if self.fail:
            raise AuthorizationError("ClientConnectorError: connection refused")
        spec = body["spec"]
        attrs = spec["resourceAttributes"]
        allowed = (spec["user"], attrs["verb"], attrs["subresource"]) in self.grants
        return {**body, "status": {"allowed": allowed}}


async def test_authorizer_asks_once_per_attributes_then_uses_the_cache() -> None:
    reviews = Reviews({("jane", "create", "proxy")})
    authorizer = WebhookAuthorizer(reviews)
    jane = Subject("jane", ("system:authenticated",))
    assert await authorizer.authorize(request_attributes(jane, "POST", "/exec/ns/p/c", NODE))
    assert await authorizer.authorize(request_attributes(jane, "POST", "/attach/ns/p/c", NODE))
    assert len(reviews.sent) == 1                 # same attributes: answered from the cache
    assert not await authorizer.authorize(request_attributes(OTHER, "POST", "/exec/ns/p/c", NODE))
    assert not await authorizer.authorize(request_attributes(OTHER, "POST", "/exec/ns/p/c", NODE))
    assert len(reviews.sent) == 2                 # the denial is cached too


async def test_fine_grained_path_falls_back_to_proxy() -> None:
    reviews = Reviews({("jane", "get", "proxy")})
    authorizer = WebhookAuthorizer(reviews)
    assert await authorizer.authorize(request_attributes(Subject("jane", ()), "GET", "/healthz", NODE))
    assert [b["spec"]["resourceAttributes"]["subresource"] for b in reviews.sent] == ["healthz", "proxy"]
    # /metrics has no fallback: nodes/proxy does not grant it.
    assert not await authorizer.authorize(request_attributes(Subject("jane", ()), "GET", "/metrics", NODE))


async def test_failed_review_raises_and_is_not_cached() -> None:
    reviews = Reviews({("jane", "get", "metrics")}, fail=True)
    authorizer = WebhookAuthorizer(reviews)
    attributes = request_attributes(Subject("jane", ()), "GET", "/metrics", NODE)
    with pytest.raises(AuthorizationError):
        await authorizer.authorize(attributes)
    reviews.fail = False
    assert await authorizer.authorize(attributes)
    assert len(reviews.sent) == 2


async def test_nodes_may_create_subject_access_reviews_and_node_restriction_lets_them() -> None:
    # The agent asks with its own identity; neither the Node authorizer nor NodeRestriction may stop it.
    node = UserInfo("system:node:n1", (SYSTEM_NODES, AUTHENTICATED))
    review = Attributes(user=node, verb="create", api_group="authorization.k8s.io", api_version="v1",
                        resource="subjectaccessreviews", path="/apis/authorization.k8s.io/v1/subjectaccessreviews")
    index_unused = None   # only Secret/ConfigMap reads consult the pod index
    assert (await NodeAuthorizer(index_unused).authorize(review)).decision is Decision.ALLOW
    await admit_request(review, index_unused, None)   # type: ignore[arg-type]  (raises when it refuses)
