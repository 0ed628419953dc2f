"""The auth step every API request passes before its handler: authenticate (401), impersonate, authorize
(403), NodeRestriction on what the URL names; then `request["user"]` and the request's user context.

In-process control loops call the API directly and never pass here: they are not authorized."""
from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Awaitable, Callable

from aiohttp import web

from apiserver.auth import context
from apiserver.auth.attributes import CONNECT_SUBRESOURCES, forbidden, request_attributes
from apiserver.auth.authentication import EXEMPT_PATHS, Authenticator, load_token_file
from apiserver.auth.authorizer import Attributes, Authorizer, UnionAuthorizer
from apiserver.auth.impersonation import impersonate, parse_headers
from apiserver.auth.node_authorizer import NodeAuthorizer
from apiserver.auth.node_graph import PodIndex
from apiserver.auth.node_restriction import admit_request
from apiserver.auth.rbac_authorizer import RBACAuthorizer
from apiserver.auth.user import SYSTEM_NODES, UserInfo
from apiserver.informer import StorageCache

if TYPE_CHECKING:
    from apiserver.api import API

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ATTRIBUTES_CACHE_SIZE = 8192
# Only short keys (user name and groups, path, selectors) are remembered: the cache is bounded in bytes,
# not only in entries, whatever URLs a client makes up or users it impersonates (clients repeat short ones).
ATTRIBUTES_CACHE_KEY_LENGTH = 512


class AuthMiddleware:
    def __init__(self, api: "API", authenticator: Authenticator, authorizer: Authorizer, pod_index: PodIndex):
        self.api = api
        self.authenticator = authenticator
        self.authorizer = authorizer
        self.pod_index = pod_index
        self._attributes_cache: dict[tuple, Attributes] = {}

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in EXEMPT_PATHS:
            return await handler(request)
        # Every request passes here: the common path (certificate, no impersonation, not a node) awaits
        # nothing but the authorizer.
        user = self.authenticator.from_certificate(request) or await self.authenticator.from_token(request)
        wanted = parse_headers(request.headers)
        if wanted.wanted:
            user = await impersonate(user, wanted, self.authorizer)
        attributes = self._attributes(user, request)
        await self._authorize(attributes)
        if attributes.verb == "get" and attributes.subresource in CONNECT_SUBRESOURCES:
            await self._authorize(replace(attributes, verb="create"))  # a websocket exec/attach creates one
        if SYSTEM_NODES in user.groups:
            await admit_request(attributes, self.pod_index, self.api)
        request["user"] = user
        context.set_user(user)
        return await handler(request)

    def _attributes(self, user: UserInfo, request: web.Request) -> Attributes:
        """request_attributes, remembered: a client repeats the same requests (creates in a namespace,
        its own Node's status, watches), and Attributes are immutable."""
        query = request.query
        field_selector, label_selector = query.get("fieldSelector"), query.get("labelSelector")
        key_length = (len(user.name) + len(user.uid) + sum(map(len, user.groups)) + len(request.path)
                      + len(field_selector or "") + len(label_selector or ""))
        if user.extra or key_length > ATTRIBUTES_CACHE_KEY_LENGTH:
            # UserInfo equality ignores extra: such a user must not share entries
            return request_attributes(user, request.method, request.path, query)
        key = (user, request.method, request.path, query.get("watch"), field_selector, label_selector)
        attributes = self._attributes_cache.get(key)
        if attributes is None:
            if len(self._attributes_cache) >= ATTRIBUTES_CACHE_SIZE:
                self._attributes_cache.clear()
            attributes = self._attributes_cache[key] = request_attributes(user, request.method, request.path, query)
        return attributes

    async def _authorize(self, attributes: Attributes) -> None:
        verdict = await self.authorizer.authorize(attributes)
        if not verdict.allowed:
            log.debug("forbidden user=%s verb=%s resource=%s/%s name=%s namespace=%s path=%s reason=%s",
                      attributes.user.name, attributes.verb, attributes.resource, attributes.subresource,
                      attributes.name, attributes.namespace, attributes.path, verdict.reason)
            raise forbidden(attributes, verdict.reason)


def install(app: web.Application, api: "API", token_auth_file: str = "") -> AuthMiddleware:
    """Authenticate and authorize every request of `app`; sets `api.authorizer` (Node, then RBAC)."""
    static_tokens = load_token_file(token_auth_file) if token_auth_file else {}
    pod_index = PodIndex(api.pods)
    rbac = RBACAuthorizer(api)
    claims = StorageCache(api.registry("", "persistentvolumeclaims"))  # which volume a node's claims are bound to
    api.authorizer = UnionAuthorizer(NodeAuthorizer(pod_index, claims=claims), rbac)
    api.authenticator = Authenticator(api, static_tokens)  # TokenReview asks it too
    auth = AuthMiddleware(api, api.authenticator, api.authorizer, pod_index)
    app.middlewares.append(auth.middleware)

    async def start(_app: web.Application) -> None:  # warm both caches before the first request
        pod_index.start()
        rbac.start()

    async def stop(_app: web.Application) -> None:
        await pod_index.stop()
        await rbac.stop()

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return auth
