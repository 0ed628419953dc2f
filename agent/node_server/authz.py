"""Authorization of node server requests: kubelet's `--authorization-mode=Webhook`.

A verified client certificate names the user (CN) and groups (O). Each request maps to attributes on
the Node object — verb from the HTTP method, resource `nodes`, name the node, subresource from the
path — and the API server decides through a SubjectAccessReview. Without this, any certificate of the
cluster CA (another node's) could exec into this node's pods.

Subresources follow upstream's kubelet (with KubeletFineGrainedAuthz, default on since v1.33):
/stats → stats, /metrics → metrics, /logs → log, /spec → spec, /checkpoint → checkpoint; /pods,
/runningpods, /healthz, /configz and /statusz try their own subresource first and fall back to proxy;
everything else (/exec, /attach, /portforward, /run, /containerLogs …) is proxy. A request is allowed
when one of its attribute sets is.

Answers are cached as upstream's webhook authorizer does: allowed ones for 5 minutes, denied ones for
30 seconds. A failed review is not cached and answers 500.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from shipmate import pki
from shipmate.kubeclient import ApiError, KubeClient

log = logging.getLogger(__name__)

Obj = dict[str, Any]
ReviewSender = Callable[[Obj], Awaitable[Obj]]   # POSTs a SubjectAccessReview, returns the answered one

SUBJECT_ACCESS_REVIEWS = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
ALLOWED_TTL = 300.0
DENIED_TTL = 30.0
MAX_CACHED = 10_000

_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
# Paths with a fine-grained subresource of their own, nodes/proxy still granting them.
_FINE_GRAINED = (("/pods", "pods"), ("/runningpods", "pods"), ("/healthz", "healthz"), ("/configz", "configz"),
                 ("/statusz", "statusz"))
# Paths whose subresource replaces nodes/proxy.
_DEDICATED = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"), ("/spec", "spec"),
              ("/checkpoint", "checkpoint"))
PROXY = "proxy"
AUTHENTICATED = "system:authenticated"


@dataclass(frozen=True)
class Subject:
    user: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class NodeAttributes:
    """One authorization question about a node server request (upstream's AttributesRecord)."""
    subject: Subject
    verb: str
    node_name: str
    subresource: str


class AuthorizationError(Exception):
    """The API server could not answer a review."""


def certificate_subject(der: bytes) -> Subject:
    """The user of a verified client certificate: CN the name, O the groups, and system:authenticated
    (upstream's x509 authenticator with the authenticated-group adder)."""
    user, groups = pki.cert_subject(der)
    return Subject(user, tuple(dict.fromkeys([*groups, AUTHENTICATED])))


def api_verb(method: str) -> str:
    """The API verb of an HTTP method; "" for a method without one (no rule grants it)."""
    return _VERBS.get(method.upper(), "")


def _is_subpath(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def subresources(path: str) -> tuple[str, ...]:
    """The subresources of `nodes` that may allow a request for `path`, in the order they are tried."""
    found = [name for prefix, name in _FINE_GRAINED if _is_subpath(path, prefix)][:1]
    dedicated = [name for prefix, name in _DEDICATED if _is_subpath(path, prefix)][:1]
    return (*found, *(dedicated or [PROXY]))


def request_attributes(subject: Subject, method: str, path: str, node_name: str) -> list[NodeAttributes]:
    verb = api_verb(method)
    return [NodeAttributes(subject, verb, node_name, name) for name in subresources(path)]


def forbidden_message(attributes: list[NodeAttributes]) -> str:
    first = attributes[0]
    names = [a.subresource for a in attributes]
    shown = f"subresource={names[0]}" if len(names) == 1 else f"subresource(s)=[{' '.join(names)}]"
    return f"Forbidden (user={first.subject.user}, verb={first.verb}, resource=nodes, {shown})"


def error_message(attributes: NodeAttributes) -> str:
    return (f"Authorization error (user={attributes.subject.user}, verb={attributes.verb}, resource=nodes, "
            f"subresource={attributes.subresource})")


def review_body(attributes: NodeAttributes) -> Obj:
    """The authorization.k8s.io/v1 SubjectAccessReview asking about `attributes`."""
    spec: Obj = {"user": attributes.subject.user,
                 "resourceAttributes": {"verb": attributes.verb, "group": "", "version": "v1", "resource": "nodes",
                                        "subresource": attributes.subresource, "name": attributes.node_name}}
    if attributes.subject.groups:
        spec["groups"] = list(attributes.subject.groups)
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


def review_allowed(review: Obj) -> bool:
    status = review.get("status")
    if not isinstance(status, dict):
        raise AuthorizationError("the SubjectAccessReview came back without a status")
    return status.get("allowed") is True and status.get("denied") is not True


class DecisionCache:
    """Decisions by attributes, each until its TTL runs out; the oldest go first beyond `max_entries`."""

    def __init__(self, allowed_ttl: float = ALLOWED_TTL, denied_ttl: float = DENIED_TTL,
                 max_entries: int = MAX_CACHED, clock: Callable[[], float] = time.monotonic) -> None:
        self.allowed_ttl, self.denied_ttl, self.max_entries, self.clock = allowed_ttl, denied_ttl, max_entries, clock
        self._entries: OrderedDict[NodeAttributes, tuple[bool, float]] = OrderedDict()

    def get(self, attributes: NodeAttributes) -> bool | None:
        entry = self._entries.get(attributes)
        if entry is None:
            return None
        allowed, expires = entry
        if self.clock() >= expires:
            del self._entries[attributes]
            return None
        return allowed

    def put(self, attributes: NodeAttributes, allowed: bool) -> None:
        ttl = self.allowed_ttl if allowed else self.denied_ttl
        self._entries.pop(attributes, None)
        self._entries[attributes] = (allowed, self.clock() + ttl)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class WebhookAuthorizer:
    """Asks the API server (through `send_review`) whether a node server request may go on."""

    def __init__(self, send_review: ReviewSender, cache: DecisionCache | None = None) -> None:
        self.send_review = send_review
        self.cache = cache if cache is not None else DecisionCache()

    async def allowed(self, attributes: NodeAttributes) -> bool:
        cached = self.cache.get(attributes)
        if cached is not None:
            return cached
        allowed = review_allowed(await self.send_review(review_body(attributes)))
        self.cache.put(attributes, allowed)
        return allowed

    async def authorize(self, attributes: list[NodeAttributes]) -> bool:
        """True when any of a request's attribute sets is allowed, trying them in order."""
        for candidate in attributes:
            if await self.allowed(candidate):
                return True
        log.info("node server request forbidden user=%s verb=%s subresources=%s", attributes[0].subject.user,
                 attributes[0].verb, ",".join(a.subresource for a in attributes))
        return False


def subject_access_review_sender(client: KubeClient) -> ReviewSender:
    """A ReviewSender over the agent's KubeClient (a node identity may create reviews); a review that
    gets no answer raises AuthorizationError."""
    async def send(body: Obj) -> Obj:
        try:
            return await client.request("POST", SUBJECT_ACCESS_REVIEWS, body=body)
        except (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError) as error:
            raise AuthorizationError(f"{type(error).__name__}: {error}") from error
    return send
