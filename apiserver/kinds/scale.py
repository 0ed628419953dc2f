"""The `scale` subresource (autoscaling/v1 Scale) of Deployments, ReplicaSets and ReplicationControllers, and
of custom resources with a scale subresource (their strategy's `scale_of`/`set_replicas` read and write the
CRD's specReplicasPath, statusReplicasPath and labelSelectorPath)."""
from __future__ import annotations

from typing import Any

from apiserver import errors
from apiserver.kinds.base import Obj
from apiserver.kinds.workload_tables import map_selector_string, selector_string
from apiserver.patch import PatchError, apply_patch
from apiserver.registry import Registry, patch_status


def scale_of(obj: Obj) -> Obj:
    """The Scale view of a workload: spec.replicas, status.replicas and the selector as text."""
    meta = obj["metadata"]
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    selector = spec.get("selector")
    selector_text = map_selector_string(selector) if obj.get("kind") == "ReplicationController" \
        else selector_string(selector)
    scale_meta = {key: meta[key] for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                  if key in meta}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_meta,
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0), "selector": selector_text}}


def _replicas_from(scale: Any, name: str) -> int:
    if not isinstance(scale, dict):
        raise errors.bad_request("the body of the request must be a Scale object")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.bad_request(f"Scale.autoscaling/v1.spec.replicas: expected an integer, got {replicas!r}")
    if replicas < 0:
        raise errors.invalid_object("autoscaling", "Scale", name, [
            errors.invalid("spec.replicas", replicas, "must be greater than or equal to 0")])
    return replicas


def _view(registry: Registry, obj: Obj) -> Obj:
    custom = getattr(registry.strategy, "scale_of", None)
    return custom(obj) if custom is not None else scale_of(obj)


def _set(registry: Registry, obj: Obj, replicas: int) -> None:
    custom = getattr(registry.strategy, "set_replicas", None)
    if custom is not None:
        custom(obj, replicas)
    else:
        obj.setdefault("spec", {})["replicas"] = replicas


async def get_scale(registry: Registry, namespace: str, name: str) -> Obj:
    return _view(registry, await registry.get(namespace, name))


async def update_scale(registry: Registry, namespace: str, name: str, body: Any, dry_run: bool = False) -> Obj:
    """PUT …/scale: sets spec.replicas; a resourceVersion in the Scale is a precondition on the object."""
    replicas = _replicas_from(body, name)
    requested_rv = ((body.get("metadata") or {}).get("resourceVersion")) if isinstance(body, dict) else None

    def set_replicas(obj: Obj) -> Obj:
        if requested_rv and requested_rv != obj["metadata"]["resourceVersion"]:
            raise errors.conflict(registry.info.group, registry.info.plural, name, errors.STALE_OBJECT)
        obj["metadata"].pop("resourceVersion", None)
        _set(registry, obj, replicas)
        return obj
    return _view(registry, await registry.guaranteed_update(namespace, name, set_replicas, dry_run=dry_run))


async def patch_scale(registry: Registry, namespace: str, name: str, patch_type: str, patch: Any,
                      dry_run: bool = False) -> Obj:
    """PATCH …/scale (what `kubectl scale` sends): the patch applies to the Scale view."""
    def set_replicas(obj: Obj) -> Obj:
        current = _view(registry, obj)
        try:
            patched = apply_patch(patch_type, current, patch)
        except PatchError as exc:
            raise patch_status(exc) from None
        patched_rv = (patched.get("metadata") or {}).get("resourceVersion")
        if patched_rv and patched_rv != current["metadata"]["resourceVersion"]:
            raise errors.conflict(registry.info.group, registry.info.plural, name, errors.STALE_OBJECT)
        obj["metadata"].pop("resourceVersion", None)
        _set(registry, obj, _replicas_from(patched, name))
        return obj
    return _view(registry, await registry.guaranteed_update(namespace, name, set_replicas, dry_run=dry_run))
