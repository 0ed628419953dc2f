"""The admission chain: every write the API makes (HTTP, scheduler, controllers) passes the same ordered
plugins, as kube-apiserver's admission chain.

A plugin sees one request through a `Step` it starts for it (`None`: nothing to do for that request). A
step is an async context manager held around the write (ResourceQuota's namespace lock, the podCIDR
lock), and has three hooks, called in chain order:
- `admit(obj, old)`: mutating admission; returns the object to go on with (the registry calls it on the
  defaulted object, before the kind's validation, as upstream's mutating admission);
- `validate(obj, old)`: validating admission, after the kind's validation, right before storing (for
  updates both run again on every optimistic-concurrency retry, with that attempt's stored object);
- `committed(obj)`: the write was stored (never for a dry run): charges, warnings, bookkeeping;
and `retry(error)`: whether a write that failed with `error` is worth trying again (allocation claims
another server took a moment ago).
Refusing is raising an `errors.APIError`. A DELETE runs `validate(None, None)` before and
`committed(deleted)` after.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, AsyncIterator, Protocol

from apiserver.auth.context import current_user
from apiserver.auth.user import UserInfo
from apiserver.kinds.base import Obj

if TYPE_CHECKING:
    from apiserver.registry import Registry

log = logging.getLogger(__name__)

CREATE, UPDATE, DELETE = "CREATE", "UPDATE", "DELETE"


@dataclass(frozen=True)
class Attributes:
    """What a plugin knows of the request besides the objects (upstream's admission.Attributes)."""
    operation: str
    registry: "Registry"
    namespace: str
    name: str = ""
    subresource: str = ""
    dry_run: bool = False
    user: UserInfo | None = field(default_factory=current_user)  # None: the server's own loops

    @property
    def group(self) -> str:
        return self.registry.info.group

    @property
    def plural(self) -> str:
        return self.registry.info.plural

    def is_(self, group: str, plural: str, subresource: str = "") -> bool:
        """Whether the request is for this resource (and subresource)."""
        info = self.registry.info
        return info.group == group and info.plural == plural and self.subresource == subresource


class Step:
    """One plugin's part in one request. Every hook does nothing unless overridden."""

    async def __aenter__(self) -> "Step":
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        return None

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        return obj

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        return None

    async def committed(self, obj: Obj | None) -> None:
        return None

    async def retry(self, error: BaseException) -> bool:
        return False


class Plugin(Protocol):
    name: str

    async def start(self, attributes: Attributes) -> Step | None:
        """This plugin's step for the request, or None when it does not apply. May refuse by raising."""


class Admission:
    """The steps of one request, in chain order: what the registry calls while it writes."""

    def __init__(self, attributes: Attributes, steps: list[Step]):
        self.attributes = attributes
        self.steps = steps

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        for step in self.steps:
            obj = await step.admit(obj, old)
        return obj

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        for step in self.steps:
            await step.validate(obj, old)

    async def committed(self, obj: Obj | None) -> None:
        if self.attributes.dry_run:
            return
        for step in self.steps:
            await step.committed(obj)

    async def retry(self, error: BaseException) -> bool:
        for step in self.steps:
            if await step.retry(error):
                return True
        return False


class AdmissionChain:
    """The ordered plugins (mutating ones first: each plugin's `admit` runs before any `validate`)."""

    def __init__(self, plugins: list[Plugin]):
        self.plugins = list(plugins)

    def names(self) -> list[str]:
        return [plugin.name for plugin in self.plugins]

    @contextlib.asynccontextmanager
    async def begin(self, attributes: Attributes) -> AsyncIterator[Admission]:
        async with contextlib.AsyncExitStack() as held:
            steps = []
            for plugin in self.plugins:
                step = await plugin.start(attributes)
                if step is not None:
                    steps.append(await held.enter_async_context(step))
            yield Admission(attributes, steps)
