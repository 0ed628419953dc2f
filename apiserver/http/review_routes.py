"""HTTP routes of the review kinds (apiserver/auth/reviews.py): POST only, answered 201 with status set.

They evaluate `api.authorizer` (the server's union authorizer) for the requesting user that the
authentication middleware put at request["user"]; a server without an authorizer answers with RBAC alone.
"""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from apiserver import errors
from apiserver.auth import reviews, token_review
from apiserver.auth.authorizer import Authorizer
from apiserver.auth.rbac_authorizer import RBACAuthorizer
from apiserver.auth.user import UserInfo
from apiserver.http import body as request_body
from apiserver.http.limits import read_body
from apiserver.kinds.base import ResourceInfo

_AUTHORIZATION = "/apis/authorization.k8s.io/v1"


class ReviewRoutes:
    def __init__(self, api: Any):
        self.api = api
        self._fallback: RBACAuthorizer | None = None

    def add_routes(self, app: web.Application) -> None:
        """Register before the generic /apis catch-all route."""
        routes = [(f"{_AUTHORIZATION}/selfsubjectaccessreviews", self.self_subject_access_review),
                  (f"{_AUTHORIZATION}/subjectaccessreviews", self.subject_access_review),
                  (f"{_AUTHORIZATION}/namespaces/{{namespace}}/localsubjectaccessreviews",
                   self.local_subject_access_review),
                  (f"{_AUTHORIZATION}/selfsubjectrulesreviews", self.self_subject_rules_review),
                  ("/apis/authentication.k8s.io/v1/selfsubjectreviews", self.self_subject_review),
                  ("/apis/authentication.k8s.io/v1/tokenreviews", self.token_review)]
        for path, handler in routes:
            app.router.add_route("*", path, handler)
        self.api.extra_resources.extend(info for info in (*reviews.REVIEW_KINDS, token_review.TOKEN_REVIEW)
                                        if info not in self.api.extra_resources)  # listed in discovery

    def authorizer(self) -> Authorizer:
        authorizer = getattr(self.api, "authorizer", None)
        if authorizer is not None:
            return authorizer
        if self._fallback is None:
            self._fallback = RBACAuthorizer(self.api)
        return self._fallback

    def _rule_resolvers(self) -> list[Any]:
        authorizer = self.authorizer()
        members = getattr(authorizer, "authorizers", (authorizer,))
        return [member for member in members if hasattr(member, "rules_for")]

    @staticmethod
    def _user(request: web.Request) -> UserInfo:
        user = request.get("user")
        if user is None:
            raise errors.APIError(401, "Unauthorized", "Unauthorized")
        return user

    @staticmethod
    async def _review(request: web.Request, info: ResourceInfo, namespace: str = "") -> dict:
        if request.method != "POST":
            raise errors.method_not_allowed(request.method, info.plural)
        raw = await read_body(request)
        body = await request_body.decode_async(raw, request.headers.get("Content-Type", "application/json")) \
            if raw else None
        return reviews.check_body(body, info, namespace)

    async def self_subject_access_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, reviews.SELF_SUBJECT_ACCESS_REVIEW)
        return _created(await reviews.access_review(review, self._user(request), self.authorizer()))

    async def subject_access_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, reviews.SUBJECT_ACCESS_REVIEW)
        return _created(await reviews.access_review(review, self._user(request), self.authorizer()))

    async def local_subject_access_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, reviews.LOCAL_SUBJECT_ACCESS_REVIEW, request.match_info["namespace"])
        return _created(await reviews.access_review(review, self._user(request), self.authorizer()))

    async def self_subject_rules_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, reviews.SELF_SUBJECT_RULES_REVIEW)
        user = self._user(request)
        # The node authorizer grants nodes more than rules can express (upstream: incomplete for nodes).
        return _created(await reviews.rules_review(review, user, self._rule_resolvers(),
                                                   incomplete=user.node_name is not None))

    async def self_subject_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, reviews.SELF_SUBJECT_REVIEW)
        return _created(reviews.self_subject_review(review, self._user(request)))

    async def token_review(self, request: web.Request) -> web.Response:
        review = await self._review(request, token_review.TOKEN_REVIEW)
        self._user(request)
        return _created(await token_review.review(review, getattr(self.api, "authenticator", None)))


def _created(review: dict) -> web.Response:
    return web.json_response(review, status=201, dumps=lambda value: json.dumps(value, separators=(",", ":")))
