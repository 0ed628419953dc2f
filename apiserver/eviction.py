"""`pods/eviction` (policy/v1 Eviction): what `kubectl drain` posts. A graceful delete of the pod.

There are no PodDisruptionBudgets yet, so every eviction is allowed (upstream's answer when no
budget selects the pod). Answers 201 with a Success Status, as upstream.
"""
from __future__ import annotations

from typing import Any

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions

EVICTION_API_VERSIONS = ("policy/v1", "policy/v1beta1")


def eviction_delete_options(name: str, body: Any, dry_run: bool) -> DeleteOptions:
    """The DeleteOptions an Eviction body asks for (checked as upstream's eviction REST does)."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an Eviction object")
    if body.get("kind") not in (None, "Eviction") or body.get("apiVersion") not in (None, *EVICTION_API_VERSIONS):
        raise errors.bad_request(f"expected policy/v1 Eviction, got {body.get('apiVersion')} {body.get('kind')}")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    grace = options.get("gracePeriodSeconds")
    if grace is not None and not isinstance(grace, int):
        raise errors.bad_request("deleteOptions.gracePeriodSeconds must be an integer")
    preconditions = options.get("preconditions") or {}
    return DeleteOptions(grace, preconditions.get("uid"), preconditions.get("resourceVersion"),
                         dry_run or bool(options.get("dryRun")))


async def evict(api: API, namespace: str, name: str, body: Any, dry_run: bool = False) -> Obj:
    options = eviction_delete_options(name, body, dry_run)
    await api.delete(api.pods, namespace, name, options)
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
