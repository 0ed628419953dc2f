"""Who is writing: the field manager of the current request, and whether an Apply forces conflicts.

The HTTP layer sets it per request (each request is its own asyncio task, so the value stays with it);
writes made by the server's own tasks (controllers, lifecycle) are recorded as kube-controller-manager."""
from __future__ import annotations

import contextvars
from dataclasses import dataclass

DEFAULT_MANAGER = "kube-controller-manager"
_MAX_MANAGER_LENGTH = 128


@dataclass(frozen=True)
class Writer:
    manager: str = DEFAULT_MANAGER
    force: bool = False
    applying: bool = False  # an Apply request: its own bookkeeping replaces the Update one


_current: contextvars.ContextVar[Writer] = contextvars.ContextVar("field_manager_writer", default=Writer())


def manager_from(field_manager: str | None, user_agent: str) -> str:
    """The fieldManager query parameter, else the User-Agent up to its first "/" (upstream's default)."""
    if field_manager:
        return field_manager
    return (user_agent.split("/", 1)[0] or "unknown")[:_MAX_MANAGER_LENGTH]


def set_writer(writer: Writer) -> None:
    _current.set(writer)


def writer() -> Writer:
    return _current.get()
