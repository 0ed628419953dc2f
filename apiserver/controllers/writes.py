"""Read-modify-write for controllers: retried on concurrent writes, guarded against a replaced object."""
from __future__ import annotations

from typing import Callable

from apiserver import errors
from apiserver.kinds.base import Obj
from apiserver.registry import Registry


async def modify(registry: Registry, obj: Obj, change: Callable[[Obj], Obj], subresource: str = "") -> Obj | None:
    """Applies `change` to the stored version of `obj` (same uid), retrying on conflicts; None if it is gone."""
    meta = obj["metadata"]
    uid = meta.get("uid")

    def guarded(current: Obj) -> Obj:
        if uid and current["metadata"].get("uid") != uid:
            raise errors.not_found(registry.info.group, registry.info.plural, meta["name"])
        current["metadata"].pop("resourceVersion", None)  # no precondition: the registry retries conflicts
        return change(current)
    try:
        return await registry.guaranteed_update(meta.get("namespace", ""), meta["name"], guarded,
                                                subresource=subresource)
    except errors.APIError as exc:
        if exc.code == 404:
            return None
        raise


def namespace_terminating(exc: errors.APIError) -> bool:
    return exc.code == 403 and "being terminated" in exc.message
