"""Who is asking: the authenticated user of the current request, for code below the HTTP layer.

The auth middleware sets it per request (each request is its own asyncio task, so the value stays
with it), as apiserver/apply/context.py does for the field manager. The server's own control loops
never set it: `current_user()` is None for them, and admission that restricts users (NodeRestriction,
CertificateSigningRequest's spec.username) leaves their writes alone."""
from __future__ import annotations

import contextvars

from apiserver.auth.user import UserInfo

_current: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar("request_user", default=None)


def set_user(user: UserInfo | None) -> None:
    _current.set(user)


def current_user() -> UserInfo | None:
    return _current.get()
