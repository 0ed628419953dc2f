"""What a LimitRange does to a pod or a PersistentVolumeClaim (pure; upstream's plugin/pkg/admission/limitranger):

- defaults (`mutate_pod`): every container and init container gets the `default` limits and `defaultRequest`
  requests of the range's `Container` items it does not set itself, and the pod is annotated
  `kubernetes.io/limit-ranger: LimitRanger plugin set: cpu, memory request for container c; cpu limit for
  container c` (requests before limits, per container in order; containers first, then init containers);
- constraints (`pod_problems`, `claim_problems`): `Container` items check each container and init container,
  `Pod` items the pod's totals (containers summed, init containers and sidecars as upstream's podRequests,
  pod-level cpu/memory replacing the sum), `PersistentVolumeClaim` items the claim's `requests` (min and max
  of the request only). Per item: every `min`, then every `max`, then every `maxLimitRequestRatio`, with
  upstream's messages; `aggregate` joins them as Go's utilerrors aggregate (duplicates dropped, one message as
  it is, several as `[a, b]`).

Upstream walks the resource maps in Go's random order; we walk them sorted by name.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from shipmate.quantity import Quantity, QuantityError, parse_quantity

Obj = dict[str, Any]
ANNOTATION = "kubernetes.io/limit-ranger"
CONTAINER, POD, CLAIM = "Container", "Pod", "PersistentVolumeClaim"
_MAX_MILLI_VALUE = (2 ** 63 - 1) // 1000   # resource.MaxMilliValue
_POD_LEVEL = ("cpu", "memory")             # upstream's supportedPodLevelResources


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _quantities(values: Any) -> dict[str, Quantity]:
    parsed: dict[str, Quantity] = {}
    for name, value in _dict(values).items():
        try:
            parsed[str(name)] = parse_quantity(value)
        except (QuantityError, TypeError, ValueError):
            continue  # validation refuses it
    return parsed


def _items(limit_range: Obj, limit_type: str) -> list[Obj]:
    limits = _dict(limit_range.get("spec")).get("limits")
    return [item for item in limits if isinstance(item, dict) and item.get("type") == limit_type] \
        if isinstance(limits, list) else []


def _containers(spec: Obj, key: str) -> list[Obj]:
    containers = spec.get(key)
    return [c for c in containers if isinstance(c, dict)] if isinstance(containers, list) else []


# defaults ----------------------------------------------------------------------------------------
def default_requirements(limit_range: Obj) -> tuple[Obj, Obj]:
    """defaultContainerResourceRequirements: (requests, limits) of the range's Container items."""
    requests: Obj = {}
    limits: Obj = {}
    for item in _items(limit_range, CONTAINER):
        requests.update(_dict(item.get("defaultRequest")))
        limits.update(_dict(item.get("default")))
    return requests, limits


def _merge_container(container: Obj, requests: Obj, limits: Obj, kind: str) -> list[str]:
    resources = container.get("resources")
    if not isinstance(resources, dict):
        resources = {}
    own_limits, own_requests = dict(_dict(resources.get("limits"))), dict(_dict(resources.get("requests")))
    set_limits = sorted(name for name in limits if name not in own_limits)
    set_requests = sorted(name for name in requests if name not in own_requests)
    for name in set_limits:
        own_limits[name] = limits[name]
    for name in set_requests:
        own_requests[name] = requests[name]
    notes = []
    if set_requests:
        notes.append(f"{', '.join(set_requests)} request for {kind} {container.get('name', '')}")
    if set_limits:
        notes.append(f"{', '.join(set_limits)} limit for {kind} {container.get('name', '')}")
    if notes:
        if own_limits:
            resources["limits"] = own_limits
        if own_requests:
            resources["requests"] = own_requests
        container["resources"] = resources
    return notes


def mutate_pod(limit_range: Obj, pod: Obj) -> bool:
    """PodMutateLimitFunc: the range's defaults for what the containers leave unset, and the annotation
    naming them. Returns whether anything was set."""
    requests, limits = default_requirements(limit_range)
    if not requests and not limits:
        return False
    spec = _dict(pod.get("spec"))
    notes: list[str] = []
    for container in _containers(spec, "containers"):
        notes += _merge_container(container, requests, limits, "container")
    for container in _containers(spec, "initContainers"):
        notes += _merge_container(container, requests, limits, "init container")
    if not notes:
        return False
    meta = pod.setdefault("metadata", {})
    annotations = meta.get("annotations")
    if not isinstance(annotations, dict):
        annotations = meta["annotations"] = {}
    annotations[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)
    return True


# constraints -------------------------------------------------------------------------------------
_ZERO = parse_quantity("0")


def _comparable(*quantities: Quantity) -> list[int]:
    """requestLimitEnforcedValues: milli-values when none overflows, else values (both rounded up)."""
    values = [q.int_value() for q in quantities]
    if all(value <= _MAX_MILLI_VALUE for value in values):
        return [q.milli_value() for q in quantities]
    return values


def _min(limit_type: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
         limits: Mapping[str, Quantity]) -> str:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, bound = _comparable(request or _ZERO, limit or _ZERO, enforced)
    if request is None:
        return f"minimum {name} usage per {limit_type} is {enforced}.  No request is specified"
    if observed_request < bound:
        return f"minimum {name} usage per {limit_type} is {enforced}, but request is {request}"
    if limit is not None and observed_limit < bound:
        return f"minimum {name} usage per {limit_type} is {enforced}, but limit is {limit}"
    return ""


def _max(limit_type: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
         limits: Mapping[str, Quantity]) -> str:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, bound = _comparable(request or _ZERO, limit or _ZERO, enforced)
    if limit is None:
        return f"maximum {name} usage per {limit_type} is {enforced}.  No limit is specified"
    if observed_limit > bound:
        return f"maximum {name} usage per {limit_type} is {enforced}, but limit is {limit}"
    if request is not None and observed_request > bound:
        return f"maximum {name} usage per {limit_type} is {enforced}, but request is {request}"
    return ""


def _max_request(limit_type: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity]) -> str:
    """maxRequestConstraint: claims have no limits, the request is held to the max."""
    request = requests.get(name)
    observed_request, _, bound = _comparable(request or _ZERO, _ZERO, enforced)
    if request is None:
        return f"maximum {name} usage per {limit_type} is {enforced}.  No request is specified"
    if observed_request > bound:
        return f"maximum {name} usage per {limit_type} is {enforced}, but request is {request}"
    return ""


def _ratio(limit_type: str, name: str, enforced: Quantity, requests: Mapping[str, Quantity],
           limits: Mapping[str, Quantity]) -> str:
    request, limit = requests.get(name), limits.get(name)
    observed_request, observed_limit, _ = _comparable(request or _ZERO, limit or _ZERO, enforced)
    if request is None or observed_request == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {enforced}, but no request is specified "
                "or request is 0")
    if limit is None or observed_limit == 0:
        return (f"{name} max limit to request ratio per {limit_type} is {enforced}, but no limit is specified or "
                "limit is 0")
    observed = observed_limit / observed_request
    shown = observed
    allowed = float(enforced.int_value())
    if enforced.int_value() <= _MAX_MILLI_VALUE:
        observed *= 1000
        allowed = float(enforced.milli_value())
    if observed > allowed:
        return f"{name} max limit to request ratio per {limit_type} is {enforced}, but provided ratio is {shown:f}"
    return ""


def _check(item: Obj, requests: Mapping[str, Quantity], limits: Mapping[str, Quantity]) -> list[str]:
    limit_type = str(item.get("type"))
    problems = [_min(limit_type, name, bound, requests, limits)
                for name, bound in sorted(_quantities(item.get("min")).items())]
    problems += [_max(limit_type, name, bound, requests, limits)
                 for name, bound in sorted(_quantities(item.get("max")).items())]
    problems += [_ratio(limit_type, name, bound, requests, limits)
                 for name, bound in sorted(_quantities(item.get("maxLimitRequestRatio")).items())]
    return [problem for problem in problems if problem]


def _requirements(container: Obj) -> tuple[dict[str, Quantity], dict[str, Quantity]]:
    resources = _dict(container.get("resources"))
    return _quantities(resources.get("requests")), _quantities(resources.get("limits"))


def _add(total: dict[str, Quantity], extra: Mapping[str, Quantity]) -> None:
    for name, value in extra.items():
        total[name] = total[name] + value if name in total else value


def _raise_to(total: dict[str, Quantity], other: Mapping[str, Quantity]) -> None:
    for name, value in other.items():
        if name not in total or value > total[name]:
            total[name] = value


def _pod_total(spec: Obj, which: int) -> dict[str, Quantity]:
    """podRequests (which=0) / podLimits (which=1) of the limitranger plugin: regular containers and sidecars
    summed, raised to each init container plus the sidecars before it; no overhead; pod-level cpu/memory
    replace the sum."""
    total: dict[str, Quantity] = {}
    for container in _containers(spec, "containers"):
        _add(total, _requirements(container)[which])
    sidecars: dict[str, Quantity] = {}
    init_peak: dict[str, Quantity] = {}
    for container in _containers(spec, "initContainers"):
        own = _requirements(container)[which]
        if container.get("restartPolicy") == "Always":
            _add(total, own)
            _add(sidecars, own)
            running = dict(sidecars)
        else:
            running = dict(own)
            _add(running, sidecars)
        _raise_to(init_peak, running)
    _raise_to(total, init_peak)
    pod_level = _quantities(_dict(spec.get("resources")).get("requests" if which == 0 else "limits"))
    total.update({name: value for name, value in pod_level.items() if name in _POD_LEVEL})
    return total


def pod_problems(limit_range: Obj, pod: Obj) -> list[str]:
    """PodValidateLimitFunc: the Container items per container and init container, then the Pod items."""
    spec = _dict(pod.get("spec"))
    problems: list[str] = []
    limits = _dict(limit_range.get("spec")).get("limits")
    for item in limits if isinstance(limits, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == CONTAINER:
            for container in _containers(spec, "containers") + _containers(spec, "initContainers"):
                problems += _check(item, *_requirements(container))
        elif item.get("type") == POD:
            problems += _check(item, _pod_total(spec, 0), _pod_total(spec, 1))
    return problems


def claim_problems(limit_range: Obj, claim: Obj) -> list[str]:
    """PersistentVolumeClaimValidateLimitFunc: min and max of the claim's requests."""
    requests = _quantities(_dict(_dict(claim.get("spec")).get("resources")).get("requests"))
    problems: list[str] = []
    for item in _items(limit_range, CLAIM):
        problems += [_min(CLAIM, name, bound, requests, {})
                     for name, bound in sorted(_quantities(item.get("min")).items())]
        problems += [_max_request(CLAIM, name, bound, requests)
                     for name, bound in sorted(_quantities(item.get("max")).items())]
    return [problem for problem in problems if problem]


def aggregate(problems: Iterable[str]) -> str:
    """utilerrors.NewAggregate(...).Error(): one message as it is, several (duplicates dropped) in brackets."""
    problems = list(problems)
    if len(problems) == 1:
        return problems[0]
    unique = list(dict.fromkeys(problems))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"
