"""Warnings for the client of the current request, as upstream's warning.AddWarning(ctx, ...).

Code below the HTTP layer (admission, strategies) calls `add(text)`; the HTTP layer opens a collection
per request (each request is its own asyncio task, so the list stays with it) and sends what was added
as `Warning: 299 - "<text>"` headers, on success and on error answers alike (kubectl prints them as
`Warning: <text>`). Outside a request (the server's own control loops) warnings are dropped.
Duplicates are sent once, as upstream's recorder does."""
from __future__ import annotations

import contextvars

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("request_warnings", default=None)


def begin() -> list[str]:
    """Start collecting for the current request; returns the list the request's warnings go to."""
    collected: list[str] = []
    _current.set(collected)
    return collected


def add(text: str) -> None:
    collected = _current.get()
    if collected is not None and text and text not in collected:
        collected.append(text)
