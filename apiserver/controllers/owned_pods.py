"""What the controllers that own pods (ReplicaSet/RC, DaemonSet, StatefulSet) share: which owners a pod event
wakes, the start of a sync (the owner as stored, with its selector), creating their pods in slow-start batches,
and deleting one of their pods."""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Callable

from apiserver import errors
from apiserver.controllers.expectations import Expectations
from apiserver.controllers.ownership import Matcher, controller_ref, labels_of
from apiserver.controllers.writes import namespace_terminating
from apiserver.kinds.base import Obj
from apiserver.informer import object_key
from apiserver.registry import DeleteOptions, Registry

if TYPE_CHECKING:
    from apiserver.api import API

log = logging.getLogger(__name__)

SelectorOf = Callable[[Obj], "Matcher | None"]


def owners_woken(event_type: str, pod: Obj, kind: str, owners: dict[str, Obj], expectations: Expectations,
                 selector_of: SelectorOf) -> list[str]:
    """Keys of the owners to sync for a pod event: its controller of `kind` (the event counted against that
    owner's expectations), or, for a pod without a controller, every owner in its namespace whose selector
    matches it (one may adopt it). A pod controlled by another kind wakes nobody."""
    meta = pod["metadata"]
    namespace = meta.get("namespace", "")
    ref = controller_ref(pod)
    if ref is not None:
        if ref.get("kind") != kind:
            return []
        key = f"{namespace}/{ref.get('name')}"
        expectations.observe(key, event_type, meta["name"], meta.get("uid", ""), bool(meta.get("deletionTimestamp")))
        return [key]
    labels = labels_of(pod)
    woken = []
    for key, owner in list(owners.items()):
        if owner["metadata"].get("namespace") != namespace:
            continue
        matches = selector_of(owner)
        if matches is not None and matches(labels):
            woken.append(key)
    return woken


async def owner_to_sync(registry: Registry, key: str, expectations: Expectations,
                        selector_of: SelectorOf) -> tuple[Obj, Matcher] | None:
    """The owner named by `key` as stored and its selector; None when it is gone (its expectations are
    forgotten; the garbage collector removes its pods) or selects nothing (logged)."""
    namespace, _, name = key.partition("/")
    try:
        owner = await registry.get(namespace, name)
    except errors.APIError as exc:
        if exc.code == 404:
            expectations.forget(key)
            return None
        raise
    matches = selector_of(owner)
    if matches is None:
        log.warning("%s has an empty or invalid selector key=%s", registry.info.kind, key)
        return None
    return owner, matches


async def delete_owned_pod(api: "API", pods: dict[str, Obj], expectations: Expectations, key: str, pod: Obj) -> bool:
    """Delete `pod` (its uid as a precondition) for the owner `key`; False when it was gone or replaced already.
    An expected deletion is noted unless the informer shows the pod terminating already (its event came)."""
    meta = pod["metadata"]
    try:
        await api.delete(api.pods, meta["namespace"], meta["name"], DeleteOptions(precondition_uid=meta["uid"]))
    except errors.APIError as exc:
        if exc.code in (404, 409):
            return False
        raise
    cached = pods.get(object_key(pod))
    if cached is not None and cached["metadata"].get("uid") == meta["uid"] and \
            not cached["metadata"].get("deletionTimestamp"):
        expectations.expect_delete(key, meta["uid"])
    return True


async def create_owned_pods(api: "API", pods: dict[str, Obj], expectations: Expectations, key: str, owner: Obj,
                            manifests: list[Obj], component: str) -> None:
    """slowStartBatch: batches of 1, 2, 4, … so a failing template does not flood the API. Each pod created gets
    a SuccessfulCreate event (and an expectation unless its informer event came first); the first failure of a
    batch a FailedCreate event and is raised, except while the namespace terminates (nothing to create then)."""
    namespace = owner["metadata"]["namespace"]
    remaining, batch = list(manifests), 1
    while remaining:
        group, remaining = remaining[:batch], remaining[batch:]
        results = await asyncio.gather(*(api.create(api.pods, namespace, manifest) for manifest in group),
                                       return_exceptions=True)
        failure = None
        for result in results:
            if isinstance(result, errors.APIError):
                failure = result
            elif isinstance(result, BaseException):
                raise result
            else:
                if object_key(result) not in pods:
                    expectations.expect_create(key, result["metadata"]["name"])
                await api.record_event(owner, "Normal", "SuccessfulCreate",
                                       f"Created pod: {result['metadata']['name']}", component)
        if failure is not None:
            if namespace_terminating(failure):
                return
            await api.record_event(owner, "Warning", "FailedCreate", f"Error creating: {failure.message}", component)
            raise failure
        batch *= 2


async def delete_owned_pod_with_events(api: "API", pods: dict[str, Obj], expectations: Expectations, key: str,
                                       owner: Obj, pod: Obj, component: str) -> None:
    """delete_owned_pod with the owner's SuccessfulDelete / FailedDelete event (ReplicaSet's and DaemonSet's)."""
    try:
        deleted = await delete_owned_pod(api, pods, expectations, key, pod)
    except errors.APIError as exc:
        await api.record_event(owner, "Warning", "FailedDelete", f"Error deleting: {exc.message}", component)
        raise
    if deleted:
        await api.record_event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}",
                               component)
