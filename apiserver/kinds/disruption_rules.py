"""PodDisruptionBudget pure rules (upstream's pkg/controller/disruption and the PDB helpers): which pods a
budget selects, how many it expects and needs healthy, which recent evictions still count, and the status that
follows. No I/O: the disruption controller (controllers/disruption.py) and the eviction subresource
(apiserver/eviction.py) use them."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from apiserver.kinds.field_rules import set_status_condition
from apiserver.kinds.workloads import scaled_int_or_percent
from shipmate.selectors import SelectorError, label_selector_from_dict
from shipmate.timeutil import parse_rfc3339, rfc3339

Obj = dict[str, Any]

DELETION_TIMEOUT = datetime.timedelta(minutes=2)  # an evicted pod not deleted by then counts again
MAX_DISRUPTED_PODS = 2000
DISRUPTION_ALLOWED = "DisruptionAllowed"
SUFFICIENT_PODS, INSUFFICIENT_PODS, SYNC_FAILED = "SufficientPods", "InsufficientPods", "SyncFailed"
_STATUS_COUNTS = ("currentHealthy", "desiredHealthy", "expectedPods", "disruptionsAllowed")


class DisruptionError(Exception):
    """The budget's numbers cannot be computed (a controller not found, a malformed percentage)."""


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def selects(pdb: Obj, labels: dict[str, str] | None) -> bool:
    """metav1.LabelSelectorAsSelector: a missing selector selects nothing, an empty one everything, an invalid
    one nothing."""
    selector = _dict(pdb.get("spec")).get("selector")
    if selector is None:
        return False
    try:
        return label_selector_from_dict(selector).matches(labels or {})
    except (SelectorError, AttributeError, TypeError):
        return False


def pod_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in _dict(pod.get("status")).get("conditions") or [])


def controller_ref(obj: Obj) -> Obj | None:
    return next((ref for ref in _dict(obj.get("metadata")).get("ownerReferences") or []
                 if isinstance(ref, dict) and ref.get("controller")), None)


def needs_scale(pdb: Obj) -> bool:
    """Whether the expected count comes from the pods' controllers (maxUnavailable, or a percent minAvailable)."""
    spec = _dict(pdb.get("spec"))
    return spec.get("maxUnavailable") is not None or isinstance(spec.get("minAvailable"), str)


def _scaled(value: Any, total: int) -> int:
    try:
        return scaled_int_or_percent(value, total, True)
    except ValueError as exc:
        raise DisruptionError(str(exc)) from None


def expected_scale(pods: list[Obj], scales: dict[str, tuple[str, int] | None]) -> tuple[int, list[str]]:
    """getExpectedScale: the sum of the scales of the pods' controllers, each counted once. `scales` maps a pod's
    controllerRef uid to (uid of the controller whose scale counts, its replicas), or None when not found."""
    counted: dict[str, int] = {}
    unmanaged: list[str] = []
    for pod in pods:
        ref = controller_ref(pod)
        if ref is None:
            unmanaged.append(pod["metadata"]["name"])
            continue
        found = scales.get(ref.get("uid", ""))
        if found is None:
            raise DisruptionError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
        counted[found[0]] = found[1]
    return sum(counted.values()), unmanaged


def expected_and_desired(pdb: Obj, pods: list[Obj], scales: dict[str, tuple[str, int] | None]
                         ) -> tuple[int, int, list[str]]:
    """getExpectedPodCount: (expectedPods, desiredHealthy, unmanaged pod names)."""
    spec = _dict(pdb.get("spec"))
    max_unavailable, min_available = spec.get("maxUnavailable"), spec.get("minAvailable")
    if max_unavailable is not None:
        expected, unmanaged = expected_scale(pods, scales)
        return expected, max(0, expected - _scaled(max_unavailable, expected)), unmanaged
    if min_available is not None:
        if isinstance(min_available, int):
            return len(pods), min_available, []
        expected, unmanaged = expected_scale(pods, scales)
        return expected, _scaled(min_available, expected), unmanaged
    return 0, 0, []


def _disrupted_at(value: Any) -> datetime.datetime | None:
    return parse_rfc3339(value) if isinstance(value, str) else None


def disrupted_pod_map(pdb: Obj, pods: list[Obj], now: datetime.datetime
                      ) -> tuple[dict[str, str], datetime.datetime | None, list[str]]:
    """buildDisruptedPodMap: the evictions still pending (pod present, not being deleted, evicted less than
    DELETION_TIMEOUT ago), when to look again, and the pods evicted too long ago without being deleted."""
    recorded = _dict(_dict(pdb.get("status")).get("disruptedPods"))
    kept: dict[str, str] = {}
    recheck: datetime.datetime | None = None
    overdue: list[str] = []
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") or meta["name"] not in recorded:
            continue
        at = _disrupted_at(recorded[meta["name"]])
        if at is None:
            continue
        deadline = at + DELETION_TIMEOUT
        if deadline < now:
            overdue.append(meta["name"])
        else:
            kept[meta["name"]] = recorded[meta["name"]]
            recheck = deadline if recheck is None or deadline < recheck else recheck
    return kept, recheck, overdue


def count_healthy(pods: list[Obj], disrupted: dict[str, str], now: datetime.datetime) -> int:
    """countHealthyPods: ready pods, not being deleted, not evicted within DELETION_TIMEOUT."""
    healthy = 0
    for pod in pods:
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            continue
        at = _disrupted_at(disrupted.get(meta["name"]))
        if at is not None and at + DELETION_TIMEOUT > now:
            continue
        if pod_ready(pod):
            healthy += 1
    return healthy


def update_disruption_allowed_condition(status: Obj, now: str) -> None:
    """UpdateDisruptionAllowedCondition: DisruptionAllowed True/SufficientPods while disruptions are allowed,
    else False/InsufficientPods."""
    allowed = status.get("disruptionsAllowed", 0) > 0
    set_status_condition(status.setdefault("conditions", []), {
        "type": DISRUPTION_ALLOWED, "status": "True" if allowed else "False",
        "reason": SUFFICIENT_PODS if allowed else INSUFFICIENT_PODS, "message": "",
        "observedGeneration": status.get("observedGeneration", 0)}, now)


def conditions_up_to_date(pdb: Obj) -> bool:
    status = _dict(pdb.get("status"))
    condition = next((c for c in status.get("conditions") or [] if c.get("type") == DISRUPTION_ALLOWED), None)
    if condition is None or status.get("observedGeneration") != pdb["metadata"].get("generation"):
        return False
    if status.get("disruptionsAllowed", 0) > 0:
        return condition.get("status") == "True" and condition.get("reason") == SUFFICIENT_PODS
    return condition.get("status") == "False" and condition.get("reason") == INSUFFICIENT_PODS


@dataclass(frozen=True)
class Counts:
    current_healthy: int
    desired_healthy: int
    expected_pods: int

    @property
    def disruptions_allowed(self) -> int:
        """Healthy pods beyond the desired ones; 0 while no pod is expected (a budget seeing its first pods)."""
        allowed = self.current_healthy - self.desired_healthy
        return 0 if self.expected_pods <= 0 or allowed <= 0 else allowed


def new_status(pdb: Obj, counts: Counts, disrupted: dict[str, str], now: datetime.datetime) -> Obj | None:
    """updatePdbStatus: the status to write, or None when the stored one is current."""
    status = _dict(pdb.get("status"))
    generation = pdb["metadata"].get("generation")
    wanted = {"currentHealthy": counts.current_healthy, "desiredHealthy": counts.desired_healthy,
              "expectedPods": counts.expected_pods, "disruptionsAllowed": counts.disruptions_allowed}
    if all(status.get(key, 0) == value for key, value in wanted.items()) and \
            _dict(status.get("disruptedPods")) == disrupted and status.get("observedGeneration") == generation and \
            conditions_up_to_date(pdb):
        return None
    result: Obj = {**wanted, "observedGeneration": generation}
    if disrupted:
        result["disruptedPods"] = dict(disrupted)
    result["conditions"] = [dict(c) for c in status.get("conditions") or []]
    update_disruption_allowed_condition(result, rfc3339(now))
    return result


def fail_safe_status(pdb: Obj, message: str, now: datetime.datetime) -> Obj:
    """failSafe: no disruption allowed, DisruptionAllowed False/SyncFailed with the error."""
    status = {key: value for key, value in _dict(pdb.get("status")).items()}
    status["disruptionsAllowed"] = 0
    conditions = [dict(c) for c in status.get("conditions") or []]
    set_status_condition(conditions, {"type": DISRUPTION_ALLOWED, "status": "False", "reason": SYNC_FAILED,
                                      "message": message, "observedGeneration": status.get("observedGeneration", 0)},
                         rfc3339(now))
    status["conditions"] = conditions
    return status


# --- the eviction side (apiserver/eviction.py) -------------------------------------------------------------
def decremented(pdb: Obj, pod_name: str, now: datetime.datetime, dry_run: bool) -> Obj:
    """checkAndDecrement's new status once an eviction is allowed: one disruption fewer, the pod recorded as
    disrupted (not on dry runs), the condition updated when none is left."""
    status = {key: value for key, value in _dict(pdb.get("status")).items()}
    status["disruptionsAllowed"] = status.get("disruptionsAllowed", 0) - 1
    if status["disruptionsAllowed"] == 0:
        status["conditions"] = [dict(c) for c in status.get("conditions") or []]
        update_disruption_allowed_condition(status, rfc3339(now))
    if not dry_run:
        status["disruptedPods"] = {**_dict(status.get("disruptedPods")), pod_name: rfc3339(now)}
    return status
