"""A pod's resource requests and limits, by upstream's rules (k8s.io/component-helpers/resource PodRequests /
PodLimits): what the scheduler fits and scores, what ResourceQuota charges, what the kubelet sizes a
memory-backed emptyDir to.

- Regular containers add up. Init containers run one after the other, each next to the restartable init
  containers (sidecars, `restartPolicy: Always`) started before it; sidecars keep running next to the
  regular containers. The pod needs the largest of: the regular containers plus every sidecar, and each
  init container plus the sidecars before it.
- Pod-level `spec.resources` (PodLevelResources, beta: on by default) replaces that sum for cpu, memory and
  hugepages-* when set.
- `spec.overhead` is added to the requests, and to every limit that is set (an unset limit stays unlimited).

A request left unset is its limit, for a container and at the pod level, as the API's defaulting makes it:
a pod body not defaulted yet (quota admission sees the create's body) counts as the stored pod will. Values
are exact (Fraction); a quantity that does not parse counts as zero (validation refuses it). Pure.
"""
from __future__ import annotations

import functools
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping

from shipmate.quantity import QuantityError, parse_quantity

ResourceList = dict[str, Fraction]

# The scheduler scores a container that requests no cpu / memory as if it asked for these (upstream's
# schedutil.DefaultMilliCPURequest and DefaultMemoryRequest), so zero-request pods do not pile up on a node.
DEFAULT_CPU_REQUEST = Fraction(100, 1000)
DEFAULT_MEMORY_REQUEST = Fraction(200 * 1024 * 1024)
NON_ZERO_DEFAULTS: Mapping[str, Fraction] = {"cpu": DEFAULT_CPU_REQUEST, "memory": DEFAULT_MEMORY_REQUEST}

_POD_LEVEL_RESOURCES = ("cpu", "memory")
_HUGEPAGES_PREFIX = "hugepages-"


# Quantities are short ("500m", "128Mi"); longer ones (a pod may carry any string or JSON integer) are
# parsed each time, so that the cache's 4096 entries stay bounded in bytes.
_CACHED_QUANTITY_LENGTH = 64
_CACHED_INTEGER_BOUND = 10 ** _CACHED_QUANTITY_LENGTH


def _parsed(value: str | int | float) -> Fraction:
    try:
        return parse_quantity(value).value
    except (QuantityError, TypeError, ValueError):
        return Fraction(0)


# Memoized: the scheduler reads the same few quantity strings for every pod it places.
_parsed_cached = functools.lru_cache(maxsize=4096)(_parsed)


def _quantity(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return Fraction(0)
    if isinstance(value, str):
        short = len(value) <= _CACHED_QUANTITY_LENGTH
    else:
        short = isinstance(value, float) or abs(value) < _CACHED_INTEGER_BOUND
    return _parsed_cached(value) if short else _parsed(value)


def resource_list(values: Any) -> ResourceList:
    """A `requests` / `limits` / `overhead` map, parsed."""
    if not isinstance(values, Mapping):
        return {}
    return {str(name): _quantity(value) for name, value in values.items()}


def _requirements(owner: Any) -> Mapping[str, Any]:
    resources = owner.get("resources") if isinstance(owner, Mapping) else None
    return resources if isinstance(resources, Mapping) else {}


def container_limits(container: Any) -> ResourceList:
    return resource_list(_requirements(container).get("limits"))


def container_requests(container: Any) -> ResourceList:
    """The container's requests, a limit standing for a request left unset."""
    resources = _requirements(container)
    return {**resource_list(resources.get("limits")), **resource_list(resources.get("requests"))}


def is_pod_level_resource(name: str) -> bool:
    return name in _POD_LEVEL_RESOURCES or name.startswith(_HUGEPAGES_PREFIX)


def _containers(spec: Mapping[str, Any], key: str) -> Iterable[Mapping[str, Any]]:
    containers = spec.get(key)
    return [c for c in containers if isinstance(c, Mapping)] if isinstance(containers, list) else []


def _add(total: ResourceList, extra: Mapping[str, Fraction]) -> None:
    for name, value in extra.items():
        total[name] = total.get(name, Fraction(0)) + value


def _raise_to(total: ResourceList, other: Mapping[str, Fraction]) -> None:
    for name, value in other.items():
        if name not in total or value > total[name]:
            total[name] = value


def _aggregate(spec: Mapping[str, Any], of: Callable[[Mapping[str, Any]], ResourceList]) -> ResourceList:
    """max(regular containers + sidecars, each init container + the sidecars started before it)."""
    total: ResourceList = {}
    for container in _containers(spec, "containers"):
        _add(total, of(container))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for container in _containers(spec, "initContainers"):
        resources = of(container)
        if container.get("restartPolicy") == "Always":
            _add(total, resources)
            _add(sidecars, resources)
            running = dict(sidecars)
        else:
            running = dict(resources)
            _add(running, sidecars)
        _raise_to(init_peak, running)
    _raise_to(total, init_peak)
    return total


def _spec(pod: Any) -> Mapping[str, Any]:
    spec = pod.get("spec") if isinstance(pod, Mapping) else None
    return spec if isinstance(spec, Mapping) else {}


def _pod_level(spec: Mapping[str, Any], section: str) -> ResourceList:
    return {name: value for name, value in resource_list(_requirements(spec).get(section)).items()
            if is_pod_level_resource(name)}


def pod_level_limits(spec: Mapping[str, Any]) -> ResourceList:
    return _pod_level(spec, "limits")


def pod_level_requests(spec: Mapping[str, Any]) -> ResourceList:
    """`spec.resources.requests` as defaulting leaves it: when pod-level limits are set, a resource without
    a pod-level request gets the containers' total request, else its pod-level limit (not for hugepages,
    which are not overcommitted: their request is the limit)."""
    requests = _pod_level(spec, "requests")
    limits = pod_level_limits(spec)
    if limits:
        containers = _aggregate(spec, container_requests)
        for name, value in containers.items():
            if is_pod_level_resource(name) and not name.startswith(_HUGEPAGES_PREFIX):
                requests.setdefault(name, value)
        for name, value in limits.items():
            requests.setdefault(name, value)
    return requests


def _status_requests(pod: Any) -> dict[str, tuple[ResourceList, ResourceList]]:
    """Container name → (allocatedResources, status.resources.requests) from the pod's status."""
    status = pod.get("status") if isinstance(pod, Mapping) else None
    result: dict[str, tuple[ResourceList, ResourceList]] = {}
    if not isinstance(status, Mapping):
        return result
    for key in ("initContainerStatuses", "containerStatuses"):
        for entry in status.get(key) or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("name"), str):
                actual = entry.get("resources") if isinstance(entry.get("resources"), Mapping) else {}
                result[entry["name"]] = (resource_list(entry.get("allocatedResources")),
                                         resource_list(actual.get("requests")))
    return result


def resize_infeasible(pod: Any) -> bool:
    """Whether the node said the pod's resize cannot fit it at all (PodResizePending, reason Infeasible)."""
    status = pod.get("status") if isinstance(pod, Mapping) else None
    conditions = status.get("conditions") if isinstance(status, Mapping) else None
    return any(isinstance(c, Mapping) and c.get("type") == "PodResizePending" and c.get("reason") == "Infeasible"
               for c in conditions or [])


def _max_of(*lists: Mapping[str, Fraction]) -> ResourceList:
    result: ResourceList = {}
    for values in lists:
        for name, value in values.items():
            result[name] = max(value, result[name]) if name in result else value
    return result


def pod_requests(pod: Any, *, non_missing: Mapping[str, Fraction] | None = None,
                 exclude_overhead: bool = False, use_status: bool = False) -> ResourceList:
    """PodRequests. `non_missing`: what a container counts for a resource it does not request (set
    explicitly, even to zero, a request stays). `use_status` (in-place resize, upstream's UseStatusResources):
    a container counts the largest of its desired (spec), allocated and actual requests, or only of the
    allocated and actual ones while its pod's resize is Infeasible."""
    spec = _spec(pod)
    statuses = _status_requests(pod) if use_status else {}
    infeasible = use_status and resize_infeasible(pod)

    def requests_of(container: Mapping[str, Any]) -> ResourceList:
        requests = container_requests(container)
        known = statuses.get(container.get("name")) if statuses else None
        if known is not None and (known[0] or known[1]):
            requests = _max_of(*known) if infeasible else _max_of(requests, *known)
        return {**non_missing, **requests} if non_missing else requests
    total = _aggregate(spec, requests_of)
    total.update(pod_level_requests(spec))
    if not exclude_overhead:
        _add(total, resource_list(spec.get("overhead")))
    return total


def pod_limits(pod: Any, *, exclude_overhead: bool = False) -> ResourceList:
    """PodLimits: overhead is added only to the limits that are set and not zero."""
    spec = _spec(pod)
    total = _aggregate(spec, container_limits)
    total.update(pod_level_limits(spec))
    if not exclude_overhead:
        for name, value in resource_list(spec.get("overhead")).items():
            if total.get(name):
                total[name] += value
    return total


def non_zero_requests(pod: Any, use_status: bool = False) -> ResourceList:
    """The requests the scheduler scores with: a container without a cpu / memory request counts the
    defaults above; with pod-level requests, only a resource requested at neither level does."""
    requests = pod_requests(pod, use_status=use_status)
    if pod_level_requests(_spec(pod)):
        defaults = {name: value for name, value in NON_ZERO_DEFAULTS.items() if name not in requests}
    else:
        defaults = dict(NON_ZERO_DEFAULTS)
    return pod_requests(pod, non_missing=defaults, use_status=use_status) if defaults else requests
