"""A controller's view of the EndpointSlices it manages: the informer's events overlaid with the
controller's own writes (newest resourceVersion wins; a deletion is remembered until its event comes),
so a slice just created is known before its watch event arrives and is never created twice."""
from __future__ import annotations

import logging
from typing import Callable

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.endpoint_rules import SlicePlan
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions

log = logging.getLogger(__name__)


def revision(obj: Obj) -> int:
    return int(obj["metadata"].get("resourceVersion") or 0)


class SliceTracker:
    def __init__(self, key_of: Callable[[Obj], str | None]):
        self.key_of = key_of  # the owner key ("<namespace>/<service>") of a slice we manage, else None
        self._slices: dict[str, dict[str, Obj]] = {}
        self._deleted: dict[tuple[str, str], int] = {}

    def slices(self, key: str) -> list[Obj]:
        return list(self._slices.get(key, {}).values())

    def observe(self, event_type: str, obj: Obj) -> str | None:
        """An informer event; returns the owner key when the slice is ours."""
        key = self.key_of(obj)
        if key:
            if event_type == "DELETED":
                self._deleted.pop((key, obj["metadata"]["name"]), None)
            self._record(key, obj, deleted=event_type == "DELETED")
        return key

    def wrote(self, key: str, obj: Obj) -> None:
        self._record(key, obj, deleted=False)

    def removed(self, key: str, last: Obj) -> None:
        self._deleted[(key, last["metadata"]["name"])] = revision(last)
        self._record(key, last, deleted=True)

    def _record(self, key: str, obj: Obj, deleted: bool) -> None:
        name = obj["metadata"]["name"]
        slices = self._slices.setdefault(key, {})
        known = slices.get(name)
        stale = (known is not None and revision(known) > revision(obj)) or \
            (not deleted and self._deleted.get((key, name), -1) >= revision(obj))
        if not stale:
            if deleted:
                slices.pop(name, None)
            else:
                slices[name] = obj
        if not slices:
            del self._slices[key]


async def apply_plan(api: API, tracker: SliceTracker, key: str, plan: SlicePlan, what: str) -> None:
    """Creates first, then updates, then deletions, so traffic never loses endpoints in between."""
    registry = api.endpoint_slices
    namespace = key.partition("/")[0]
    for slice_obj in plan.create:
        created = await api.create(registry, namespace, slice_obj)
        tracker.wrote(key, created)
        log.info("%s created service=%s slice=%s endpoints=%d", what, key, created["metadata"]["name"],
                 len(created.get("endpoints") or []))
    for slice_obj in plan.update:
        updated, _ = await api.update(registry, namespace, slice_obj["metadata"]["name"], slice_obj)
        tracker.wrote(key, updated)
        log.info("%s updated service=%s slice=%s endpoints=%d", what, key, updated["metadata"]["name"],
                 len(updated.get("endpoints") or []))
    for slice_obj in plan.delete:
        try:
            result = await api.delete(registry, namespace, slice_obj["metadata"]["name"], DeleteOptions())
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            tracker.removed(key, slice_obj)
            continue
        tracker.removed(key, result.object)
        log.info("%s deleted service=%s slice=%s", what, key, slice_obj["metadata"]["name"])
