"""Parse a resource URL into group/version/namespace/resource/name/subresource (like RequestInfoFactory)."""
from __future__ import annotations

import functools
from dataclasses import dataclass

# Every request's path is parsed three times (metrics, authorization, routing); paths repeat (collections,
# hot objects). Longer paths than this are parsed each time, so a client cannot fill the cache with large ones.
_CACHED_PATH_LENGTH = 256


@dataclass(frozen=True)
class RequestInfo:
    group: str
    version: str
    resource: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""


def parse_resource_path(path: str) -> RequestInfo | None:
    """None when the path is not a resource path (discovery documents are handled elsewhere)."""
    if len(path) > _CACHED_PATH_LENGTH:
        return _parse(path)
    return _parse_cached(path)


def _parse(path: str) -> RequestInfo | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    namespace = ""
    # /namespaces/{ns}/{resource}... but /namespaces/{name}[/status|/finalize] addresses a Namespace.
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    return RequestInfo(group, version, resource, namespace, name, subresource)


_parse_cached = functools.lru_cache(maxsize=4096)(_parse)
