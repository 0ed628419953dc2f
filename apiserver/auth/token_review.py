"""authentication.k8s.io/v1 TokenReview (create-only, not stored): who a bearer token is, as the server's own
token authenticators (static, bootstrap, service account) see it, for the audiences the review asks for
(default: the API's). Answered 201 with `status.authenticated`, `status.user`, `status.audiences`, and
`status.error` when the token is refused."""
from __future__ import annotations

from typing import Any

from apiserver import errors
from apiserver.auth import service_accounts
from apiserver.kinds.base import Obj, ResourceInfo

AUTHENTICATION = "authentication.k8s.io"
TOKEN_REVIEW = ResourceInfo(AUTHENTICATION, "v1", "TokenReview", "tokenreviews", "tokenreview", False,
                            verbs=("create",))


async def review(body: Obj, authenticator: Any) -> Obj:
    """`body` checked by reviews.check_body; `authenticator` the server's auth.authentication.Authenticator."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    token = spec.get("token")
    if not isinstance(token, str) or not token:
        raise errors.bad_request(f"token is required for TokenReview in {AUTHENTICATION}")
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("spec.audiences must be a list of strings")
    status: Obj = {"user": {}}
    try:
        found = await authenticator.token_user(token, tuple(audiences)) if authenticator is not None else None
    except service_accounts.InvalidToken as error:
        found, status["error"] = None, str(error)
    except errors.APIError as error:  # an expired bootstrap token
        found, status["error"] = None, error.message
    if found is not None:
        user, matched = found
        status = {"authenticated": True, "user": user.as_user_info(), "audiences": list(matched)}
    return {**body, "status": status}
