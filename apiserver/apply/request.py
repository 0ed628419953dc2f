"""The request side of field management: who writes (from the query and headers), the bookkeeping hook
every registry write calls, and Apply as a patch (409 conflicts shaped as upstream's)."""
from __future__ import annotations

from typing import Any, Mapping

from apiserver import errors
from apiserver.apply import context
from apiserver.apply.fieldpath import BUILTIN, Layout, path_string
from apiserver.apply.managed import ApplyConflict, Obj, apply, record_update
from apiserver.patch import APPLY_PATCH


def request_writer(query: Mapping[str, str], headers: Mapping[str, str]) -> context.Writer:
    content_type = headers.get("Content-Type", "").split(";")[0].strip()
    applying = content_type == APPLY_PATCH
    field_manager = query.get("fieldManager")
    if applying and not field_manager:
        raise errors.bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
    force = query.get("force")
    if force is not None and not applying:
        raise errors.invalid_object("meta.k8s.io", "PatchOptions", "", [
            errors.forbidden("force", "may not be specified for non-apply patch")])
    return context.Writer(context.manager_from(field_manager, headers.get("User-Agent", "")),
                          force in ("true", "1", "True"), applying)


def track(new: Obj, old: Obj | None, subresource: str, now: str, layout: Layout = BUILTIN) -> None:
    """Called by the registry on every create/update once the object is final (before storing)."""
    writer = context.writer()
    if writer.applying and not subresource:
        return  # apply_config already did the bookkeeping
    if subresource == "status" and old is not None:
        new.setdefault("metadata", {})["managedFields"] = (old.get("metadata") or {}).get("managedFields")
        if new["metadata"]["managedFields"] is None:
            del new["metadata"]["managedFields"]
    record_update(new, old, writer.manager, subresource, now, layout)


def apply_config(live: Obj | None, config: Any, group: str, plural: str, name: str, now: str,
                 layout: Layout = BUILTIN) -> Obj:
    """The object after applying `config` for the current writer; 409 on conflicts unless forced."""
    if not isinstance(config, dict):
        raise errors.bad_request("the body of an apply request must be an object")
    if not config.get("apiVersion") or not config.get("kind"):
        raise errors.bad_request("apiVersion and kind must be set in an applied configuration")
    writer = context.writer()
    try:
        return apply(live, config, writer.manager, writer.force, now, layout)
    except ApplyConflict as exc:
        details: dict[str, Any] = {"name": name, "kind": plural, "causes": [
            {"type": "FieldManagerConflict", "message": f"conflict with {conflict.manager}",
             "field": path_string(conflict.path)} for conflict in exc.conflicts]}
        if group:
            details["group"] = group
        raise errors.APIError(409, "Conflict", str(exc), details) from None
