"""ResourceQuota arithmetic (pure): what an object uses, whether a create fits, upstream's messages.

Usage names: `pods`, `count/pods`, `requests.cpu` (alias `cpu`), `requests.memory` (alias `memory`),
`limits.cpu`, `limits.memory`; object counts `count/<plural>` (core) or `count/<plural>.<group>`,
plus the legacy names `services`, `configmaps`, `secrets`, `replicationcontrollers`,
`resourcequotas`, `services.nodeports`, `services.loadbalancers`; PersistentVolumeClaims also count
`requests.storage`, `<class>.storageclass.storage.k8s.io/requests.storage` and
`<class>.storageclass.storage.k8s.io/persistentvolumeclaims` (upstream's PVC evaluator).
"""
from __future__ import annotations

import datetime
from fractions import Fraction
from typing import Any, Iterable

from shipmate.pod_resources import container_limits, container_requests, pod_limits, pod_requests
from shipmate.pod_resources import resource_list as parse_resource_list  # quota hard/used lists too
from shipmate.timeutil import parse_rfc3339
from shipmate.quantity import QuantityFormat, format_quantity

Obj = dict[str, Any]
Usage = dict[str, Fraction]

LEGACY_COUNT_NAMES = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                      "replicationcontrollers": "replicationcontrollers", "resourcequotas": "resourcequotas",
                      "persistentvolumeclaims": "persistentvolumeclaims"}
COMPUTE_NAMES = ("requests.cpu", "requests.memory", "limits.cpu", "limits.memory", "cpu", "memory")
_BINARY_NAMES = ("memory", "storage")
STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def format_value(name: str, value: Fraction) -> str:
    binary = any(name.endswith(suffix) for suffix in _BINARY_NAMES) and value.denominator == 1 and value >= 1024
    return format_quantity(value, QuantityFormat.BINARY_SI if binary else QuantityFormat.DECIMAL_SI)


def format_resource_list(usage: Usage) -> dict[str, str]:
    return {name: format_value(name, value) for name, value in sorted(usage.items())}


def pod_counts(pod: Obj, now: datetime.datetime) -> bool:
    """Upstream's QuotaV1Pod: terminal pods and pods past their deletion grace do not count."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    meta = pod.get("metadata") or {}
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") is not None:
        deadline = parse_rfc3339(meta["deletionTimestamp"]) + \
            datetime.timedelta(seconds=int(meta["deletionGracePeriodSeconds"]))
        if now > deadline:
            return False
    return True


def pod_compute_usage(pod: Obj) -> Usage:
    """The pod's requests and limits of cpu and memory (upstream's PodUsageFunc over PodRequests/PodLimits:
    sidecars, pod-level resources and overhead included; a resized pod's requests are the largest of desired,
    allocated and actual); 0 for what it does not set."""
    requests, limits = pod_requests(pod, use_status=True), pod_limits(pod)
    usage: Usage = {}
    for resource in ("cpu", "memory"):
        usage[f"requests.{resource}"] = usage[resource] = requests.get(resource, Fraction(0))
        usage[f"limits.{resource}"] = limits.get(resource, Fraction(0))
    return usage


def claim_storage_usage(claim: Obj) -> Usage:
    """requests.storage (the larger of the request and status.allocatedResources, as upstream) in total and
    per StorageClass, and the claim counted per class."""
    spec, status = claim.get("spec") or {}, claim.get("status") or {}
    request = parse_resource_list((spec.get("resources") or {}).get("requests")).get("storage", Fraction(0))
    allocated = parse_resource_list(status.get("allocatedResources")).get("storage", Fraction(0))
    storage = max(request, allocated)
    usage: Usage = {"requests.storage": storage}
    annotations = (claim.get("metadata") or {}).get("annotations") or {}
    class_name = annotations.get(_STORAGE_CLASS_ANNOTATION, spec.get("storageClassName") or "")
    if class_name:
        usage[f"{class_name}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        usage[f"{class_name}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = Fraction(1)
    return usage


def is_storage_name(name: str) -> bool:
    """Resource names only PersistentVolumeClaims use (besides their counts)."""
    return name == "requests.storage" or STORAGE_CLASS_SUFFIX in name


def object_usage(group: str, plural: str, obj: Obj, now: datetime.datetime) -> Usage:
    """What one stored object uses (empty: it does not count)."""
    if group == "" and plural == "pods":
        if not pod_counts(obj, now):
            return {}
        return {"pods": Fraction(1), count_name(group, plural): Fraction(1), **pod_compute_usage(obj)}
    usage: Usage = {count_name(group, plural): Fraction(1)}
    if group == "" and plural in LEGACY_COUNT_NAMES:
        usage[LEGACY_COUNT_NAMES[plural]] = Fraction(1)
    if group == "" and plural == "persistentvolumeclaims":
        usage.update(claim_storage_usage(obj))
    if group == "" and plural == "services":
        spec = obj.get("spec") or {}
        kind = spec.get("type") or "ClusterIP"
        if kind in ("NodePort", "LoadBalancer"):
            usage["services.nodeports"] = Fraction(len(spec.get("ports") or []))
        if kind == "LoadBalancer":
            usage["services.loadbalancers"] = Fraction(1)
    return usage


def add(total: Usage, extra: Usage) -> Usage:
    result = dict(total)
    for name, value in extra.items():
        result[name] = result.get(name, Fraction(0)) + value
    return result


def total_usage(usages: Iterable[Usage], names: Iterable[str]) -> Usage:
    """The namespace's usage of the quota's resources (every hard name present, 0 when unused)."""
    total = {name: Fraction(0) for name in names}
    for usage in usages:
        for name, value in usage.items():
            if name in total:
                total[name] += value
    return total


def _pretty(usage: Usage) -> str:
    return ",".join(f"{name}={format_value(name, value)}" for name, value in sorted(usage.items()))


def missing_compute(pod: Obj, hard: Usage) -> str | None:
    """Upstream's pod Constraints: every container must set what the quota limits (requests.cpu, ...)."""
    required = [name for name in COMPUTE_NAMES if name in hard]
    if not required:
        return None
    missing: dict[str, list[str]] = {}
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        requests, limits = container_requests(container), container_limits(container)
        present = set()
        for resource in ("cpu", "memory"):
            if resource in requests:
                present.update({f"requests.{resource}", resource})
            if resource in limits:
                present.add(f"limits.{resource}")
        for name in required:
            if name not in present:
                missing.setdefault(name, []).append(container.get("name", ""))
    if not missing:
        return None
    return "must specify " + "; ".join(f"{name} for: {','.join(names)}" for name, names in sorted(missing.items()))


def check(quota_name: str, hard: Usage, used: Usage, requested: Usage) -> str | None:
    """None when `requested` fits, else upstream's `exceeded quota: …` text (only the exceeded names)."""
    relevant = {name: value for name, value in requested.items() if name in hard}
    exceeded = sorted(name for name, value in relevant.items()
                      if used.get(name, Fraction(0)) + value > hard[name])
    if not exceeded:
        return None
    return (f"exceeded quota: {quota_name}, requested: {_pretty({n: relevant[n] for n in exceeded})}, "
            f"used: {_pretty({n: used.get(n, Fraction(0)) for n in exceeded})}, "
            f"limited: {_pretty({n: hard[n] for n in exceeded})}")
