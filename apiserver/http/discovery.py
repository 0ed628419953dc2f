"""Discovery documents: /api, /apis, /api/v1, /apis/<g>/<v>, aggregated discovery (apidiscovery.k8s.io/v2)."""
from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

from apiserver.kinds.base import ResourceInfo

GIT_VERSION = "v1.35.0-shipmate"
AGGREGATED_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "binding": ["create"], "finalize": ["update"],
                      "scale": ["get", "patch", "update"], "eviction": ["create"], "approval": ["get", "patch", "update"],
                      "token": ["create"], "attach": ["create", "get"], "exec": ["create", "get"], "log": ["get"],
                      "resize": ["get", "patch", "update"], "ephemeralcontainers": ["get", "patch", "update"]}
_SUBRESOURCE_KIND = {"binding": ("", "v1", "Binding"), "scale": ("autoscaling", "v1", "Scale"),
                     "eviction": ("policy", "v1", "Eviction"), "token": ("authentication.k8s.io", "v1", "TokenRequest"),
                     "attach": ("", "v1", "PodAttachOptions"), "exec": ("", "v1", "PodExecOptions")}


def version_info() -> dict[str, Any]:
    return {"major": "1", "minor": "35", "emulationMajor": "1", "emulationMinor": "35",
            "minCompatibilityMajor": "1", "minCompatibilityMinor": "34", "gitVersion": GIT_VERSION,
            "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z", "goVersion": "python", "compiler": "cpython",
            "platform": "linux/amd64"}


def _storage_hash(info: ResourceInfo) -> str:
    return hashlib.sha256(f"{info.api_version}/{info.kind}".encode()).hexdigest()[:12]


def group_versions(resources: list[ResourceInfo]) -> dict[str, list[str]]:
    versions: dict[str, list[str]] = defaultdict(list)
    for info in resources:
        if info.version not in versions[info.group]:
            versions[info.group].append(info.version)
    return versions


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group_entry(group: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(resources: list[ResourceInfo]) -> dict[str, Any]:
    groups = [_group_entry(g, v) for g, v in sorted(group_versions(resources).items()) if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(resources: list[ResourceInfo], group: str) -> dict[str, Any] | None:
    versions = group_versions(resources).get(group)
    if not group or not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group_entry(group, versions)}


def api_resource_list(resources: list[ResourceInfo], group: str, version: str) -> dict[str, Any] | None:
    selected = [r for r in resources if r.group == group and r.version == version]
    if not selected:
        return None
    entries = []
    for info in sorted(selected, key=lambda r: r.plural):
        entry: dict[str, Any] = {"name": info.plural, "singularName": info.singular, "namespaced": info.namespaced,
                                 "kind": info.kind, "verbs": list(info.verbs),
                                 "storageVersionHash": _storage_hash(info)}
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.categories:
            entry["categories"] = list(info.categories)
        entries.append(entry)
        for sub in info.subresources + info.proxied_subresources:
            sub_group, sub_version, sub_kind = _SUBRESOURCE_KIND.get(sub, (info.group, info.version, info.kind))
            sub_entry = {"name": f"{info.plural}/{sub}", "singularName": "", "namespaced": info.namespaced,
                         "kind": sub_kind, "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"])}
            if sub_group != group or sub_version != version:
                sub_entry.update({"group": sub_group, "version": sub_version})
            entries.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": entries}


def aggregated_discovery(resources: list[ResourceInfo], legacy: bool, api_version: str) -> dict[str, Any]:
    """APIGroupDiscoveryList for /api (legacy=True: the core group) or /apis (named groups)."""
    items = []
    for group, versions in sorted(group_versions(resources).items()):
        if (group == "") != legacy:
            continue
        version_entries = []
        for version in versions:
            resource_entries = []
            for info in sorted((r for r in resources if r.group == group and r.version == version),
                               key=lambda r: r.plural):
                entry: dict[str, Any] = {
                    "resource": info.plural, "singularResource": info.singular,
                    "responseKind": {"group": info.group, "version": info.version, "kind": info.kind},
                    "scope": "Namespaced" if info.namespaced else "Cluster", "verbs": list(info.verbs)}
                if info.short_names:
                    entry["shortNames"] = list(info.short_names)
                if info.categories:
                    entry["categories"] = list(info.categories)
                subresources = []
                for sub in info.subresources + info.proxied_subresources:
                    sub_group, sub_version, sub_kind = _SUBRESOURCE_KIND.get(sub, (info.group, info.version,
                                                                                   info.kind))
                    subresources.append({"subresource": sub, "verbs": _SUBRESOURCE_VERBS.get(sub, ["get"]),
                                         "responseKind": {"group": sub_group, "version": sub_version,
                                                          "kind": sub_kind}})
                if subresources:
                    entry["subresources"] = subresources
                resource_entries.append(entry)
            version_entries.append({"version": version, "resources": resource_entries, "freshness": "Current"})
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": version_entries})
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}
