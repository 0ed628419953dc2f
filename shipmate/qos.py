"""A pod's QoS class (v1qos.GetPodQOS / ComputePodQOS), the one rule the API server (status.qosClass at
create) and the agent (status, OOM score) both apply.

Only cpu and memory count. A set of requirements (one container's, or the pod-level `spec.resources`,
which replace the containers' when present: PodLevelResources is on by default in 1.35) is BestEffort
when neither resource is requested or limited, Guaranteed when both are limited and each request equals
its limit, Burstable otherwise. The pod is BestEffort or Guaranteed when every app and init container is
(ephemeral containers declare no resources), Burstable otherwise. A request left unset is its limit, as
the API's defaulting makes it; a quantity that does not parse counts as unset (validation refuses it).
"""
from __future__ import annotations

from typing import Any, Mapping

from shipmate.quantity import Quantity, QuantityError, parse_quantity

GUARANTEED, BURSTABLE, BEST_EFFORT = "Guaranteed", "Burstable", "BestEffort"
QOS_RESOURCES = ("cpu", "memory")


def _amount(values: Any, name: str) -> Quantity | None:
    """A non-zero quantity of `values[name]`; None when unset, zero or unreadable."""
    raw = values.get(name) if isinstance(values, Mapping) else None
    if raw is None:
        return None
    try:
        quantity = parse_quantity(raw)
    except QuantityError:
        return None
    return quantity if quantity.value != 0 else None


def requirements_qos(resources: Any) -> str:
    """The class of one set of requests and limits (upstream's resourceQOS after request defaulting)."""
    if not isinstance(resources, Mapping):
        return BEST_EFFORT
    limits, requests = resources.get("limits"), resources.get("requests")
    classes = set()
    for name in QOS_RESOURCES:
        limit = _amount(limits, name)
        request = _amount(requests, name) if isinstance(requests, Mapping) and name in requests else limit
        if request != limit:
            return BURSTABLE
        classes.add(BEST_EFFORT if limit is None else GUARANTEED)
    return classes.pop() if len(classes) == 1 else BURSTABLE


def compute_qos_class(spec: Any) -> str:
    """ComputePodQOS of a pod spec, from its resources alone."""
    if not isinstance(spec, Mapping):
        return BEST_EFFORT
    if isinstance(spec.get("resources"), Mapping):
        return requirements_qos(spec["resources"])
    classes = {requirements_qos(container.get("resources"))
               for key in ("containers", "initContainers") for container in _list(spec.get(key))
               if isinstance(container, Mapping)}
    if not classes:
        return BEST_EFFORT
    return classes.pop() if len(classes) == 1 else BURSTABLE


def pod_qos_class(pod: Mapping[str, Any]) -> str:
    """GetPodQOS: the class the pod's status records (fixed at creation), else the computed one."""
    status = pod.get("status")
    recorded = status.get("qosClass") if isinstance(status, Mapping) else None
    return recorded if recorded else compute_qos_class(pod.get("spec"))


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []
