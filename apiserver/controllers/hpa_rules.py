"""The HorizontalPodAutoscaler's arithmetic, as kube-controller-manager's podautoscaler (replica_calculator.go and
horizontal.go): pure functions over plain values.

- `group_pods`: which pods count (ready with a metric), which are unready (Pending, or CPU measured while not yet
  ready within the initialization period), missing (no metric) or ignored (deleted, failed);
- `resource_replicas`: desiredReplicas = ceil(ready pods × usage / target), nothing within the tolerance (0.1),
  missing pods assumed at the target (≥ their request) when scaling down and at 0 when scaling up, unready pods at 0
  when scaling up, and no change when those assumptions flip the direction;
- `stabilize` / `stabilize_with_behavior`: the recommendations window (scale down: the highest recent one);
- `limit_without_behavior` / `limit_with_behavior`: min/max replicas and scale rates (2× or +4 without a
  behavior; each behavior policy's Pods/Percent per period over the scale events of that period).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

CPU_INITIALIZATION_PERIOD = 300.0          # --horizontal-pod-autoscaler-cpu-initialization-period
INITIAL_READINESS_DELAY = 30.0             # --horizontal-pod-autoscaler-initial-readiness-delay
DEFAULT_TOLERANCE = 0.1                    # --horizontal-pod-autoscaler-tolerance
SCALE_UP_LIMIT_FACTOR, SCALE_UP_LIMIT_MINIMUM = 2.0, 4


class MetricError(Exception):
    """No replica count can be computed from this metric (the reason goes to ScalingActive and an event)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


@dataclass(frozen=True)
class PodInfo:
    name: str
    phase: str = "Running"
    deleting: bool = False
    ready: bool | None = True            # the Ready condition's status (None: no condition)
    ready_transition: float = 0.0        # its lastTransitionTime (epoch seconds)
    start_time: float | None = 0.0       # status.startTime (epoch seconds)
    request_milli: int | None = None     # sum of the measured containers' requests (None: one lacks it)
    missing_request: str = ""            # the first measured container without a request


@dataclass(frozen=True)
class PodMetric:
    value_milli: int                     # usage (CPU millicores, memory milli-bytes as upstream's MilliValue)
    timestamp: float
    window: float


@dataclass(frozen=True)
class Tolerances:
    down: float = DEFAULT_TOLERANCE
    up: float = DEFAULT_TOLERANCE

    def within(self, ratio: float) -> bool:
        return (1.0 - ratio) <= self.down if ratio < 1.0 else (ratio - 1.0) <= self.up


@dataclass
class Groups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def group_pods(pods: list[PodInfo], metrics: dict[str, PodMetric], cpu: bool, now: float,
               cpu_initialization: float = CPU_INITIALIZATION_PERIOD,
               readiness_delay: float = INITIAL_READINESS_DELAY) -> Groups:
    groups = Groups()
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            groups.ignored.add(pod.name)
            continue
        if pod.phase == "Pending":
            groups.unready.add(pod.name)
            continue
        metric = metrics.get(pod.name)
        if metric is None:
            groups.missing.add(pod.name)
            continue
        if cpu:
            if pod.ready is None or pod.start_time is None:
                unready = True
            elif pod.start_time + cpu_initialization > now:
                # still initializing: unready, or its sample was taken before it became ready
                unready = pod.ready is False or metric.timestamp < pod.ready_transition + metric.window
            else:
                # never became ready after starting
                unready = pod.ready is False and pod.start_time + readiness_delay > pod.ready_transition
            if unready:
                groups.unready.add(pod.name)
                continue
        groups.ready += 1
    return groups


@dataclass(frozen=True)
class Proposal:
    replicas: int
    utilization: int | None        # percent of request (Utilization targets)
    average_milli: int             # raw average usage per pod (milli units)
    timestamp: float


def _utilization_ratio(metrics: dict[str, PodMetric], requests: dict[str, int],
                       target_utilization: int) -> tuple[float, int, int]:
    """(usage ratio, utilization %, average usage) over the pods that have both a metric and a request."""
    total_usage = total_request = count = 0
    for name, metric in metrics.items():
        if name in requests:
            total_usage += metric.value_milli
            total_request += requests[name]
            count += 1
    if total_request == 0:
        raise MetricError("FailedGetResourceMetric", "no metrics returned matched known pods")
    utilization = int(total_usage * 100 / total_request)
    return utilization / target_utilization, utilization, total_usage // count


def resource_replicas(current: int, pods: list[PodInfo], metrics: dict[str, PodMetric], resource: str,
                      now: float, target_utilization: int | None = None, target_average_milli: int | None = None,
                      tolerances: Tolerances = Tolerances()) -> Proposal:
    """GetResourceReplicas (Utilization target) or GetRawResourceReplicas (AverageValue target)."""
    if not pods:
        raise MetricError("FailedGetResourceMetric", "no pods returned by selector while calculating replica count")
    groups = group_pods(pods, metrics, resource == "cpu", now)
    known = {p.name for p in pods}
    usable = {name: m for name, m in metrics.items()
              if name in known and name not in groups.ignored and name not in groups.unready}
    if not usable:
        raise MetricError("FailedGetResourceMetric", "did not receive metrics for targeted pods (pods might be "
                          "unready)")
    timestamp = max(m.timestamp for m in usable.values())
    if target_utilization is not None:
        requests: dict[str, int] = {}
        for pod in pods:
            if pod.request_milli is None:
                raise MetricError("FailedGetResourceMetric", f"missing request for {resource} in container "
                                  f"{pod.missing_request} of Pod {pod.name}")
            requests[pod.name] = pod.request_milli
        ratio, utilization, average = _utilization_ratio(usable, requests, target_utilization)
    else:
        assert target_average_milli is not None
        requests = {}
        average = sum(m.value_milli for m in usable.values()) // len(usable)
        ratio, utilization = average / target_average_milli, None
    scale_up_with_unready = bool(groups.unready) and ratio > 1.0
    if not scale_up_with_unready and not groups.missing:
        if tolerances.within(ratio):
            return Proposal(current, utilization, average, timestamp)
        return Proposal(math.ceil(ratio * len(usable)), utilization, average, timestamp)

    # Missing pods: at the target (scaling down) or at 0 (scaling up); unready pods at 0 when scaling up.
    filled = dict(usable)
    if ratio != 1.0:
        for name in groups.missing:
            if ratio > 1.0:
                value = 0
            elif target_utilization is not None:      # scaling down: at the target (at least the request)
                value = requests.get(name, 0) * max(100, target_utilization) // 100
            else:
                value = target_average_milli or 0
            filled[name] = PodMetric(value, timestamp, 0)
    if scale_up_with_unready:
        for name in groups.unready:
            filled[name] = PodMetric(0, timestamp, 0)
    if target_utilization is not None:
        new_ratio, _, _ = _utilization_ratio(filled, {**requests}, target_utilization)
    else:
        new_ratio = (sum(m.value_milli for m in filled.values()) / len(filled)) / (target_average_milli or 1)
    if tolerances.within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return Proposal(current, utilization, average, timestamp)
    replicas = math.ceil(new_ratio * len(filled))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, utilization, average, timestamp)
    return Proposal(replicas, utilization, average, timestamp)


# ---------------------------------------------------------------- stabilization and rate limits
@dataclass
class Recommendation:
    replicas: int
    at: float


@dataclass
class ScaleEvent:
    change: int
    at: float
    outdated: bool = False


def stabilize(history: list[Recommendation], desired: int, now: float, window: float) -> int:
    """Without a behavior: the highest recommendation of the downscale window (records this one)."""
    best = desired
    old_index = None
    for index, rec in enumerate(history):
        if rec.at < now - window:
            old_index = index
        else:
            best = max(best, rec.replicas)
    if old_index is not None:
        history[old_index] = Recommendation(desired, now)
    else:
        history.append(Recommendation(desired, now))
    return best


def stabilize_with_behavior(history: list[Recommendation], current: int, desired: int, now: float,
                            up_window: float, down_window: float) -> tuple[int, str, str]:
    up, down = desired, desired
    old_index = None
    for index, rec in enumerate(history):
        if rec.at > now - up_window:
            up = min(up, rec.replicas)
        if rec.at > now - down_window:
            down = max(down, rec.replicas)
        if rec.at < now - up_window and rec.at < now - down_window:
            old_index = index
    recommendation = current
    recommendation = max(recommendation, up)
    recommendation = min(recommendation, down)
    if old_index is not None:
        history[old_index] = Recommendation(desired, now)
    else:
        history.append(Recommendation(desired, now))
    if desired >= current:
        return recommendation, "ScaleUpStabilized", ("recent recommendations were lower than current one, applying "
                                                     "the lowest recent recommendation")
    return recommendation, "ScaleDownStabilized", ("recent recommendations were higher than current one, applying "
                                                   "the highest recent recommendation")


def limit_without_behavior(current: int, desired: int, minimum: int, maximum: int) -> tuple[int, str, str]:
    """convertDesiredReplicasWithRules."""
    scale_up_limit = max(int(SCALE_UP_LIMIT_FACTOR * current), SCALE_UP_LIMIT_MINIMUM)
    if maximum > scale_up_limit:
        allowed_max, reason, message = scale_up_limit, "ScaleUpLimit", ("the desired replica count is increasing "
                                                                        "faster than the maximum scale rate")
    else:
        allowed_max, reason, message = maximum, "TooManyReplicas", ("the desired replica count is more than the "
                                                                    "maximum replica count")
    if desired < minimum:
        return minimum, "TooFewReplicas", "the desired replica count is less than the minimum replica count"
    if desired > allowed_max:
        return allowed_max, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def _changes_in_period(period: float, events: list[ScaleEvent], now: float) -> int:
    return sum(e.change for e in events if not e.outdated and e.at > now - period)


def scale_up_limit(current: int, events: list[ScaleEvent], rules: dict, now: float) -> int:
    policy = rules.get("selectPolicy") or "Max"
    if policy == "Disabled":
        return current
    choose, result = (min, 2 ** 31 - 1) if policy == "Min" else (max, -(2 ** 31))
    for item in rules.get("policies") or []:
        start = current - _changes_in_period(item.get("periodSeconds", 15), events, now)
        if item.get("type") == "Pods":
            proposed = start + int(item.get("value", 0))
        else:
            proposed = math.ceil(start * (1 + int(item.get("value", 0)) / 100))
        result = choose(result, proposed)
    return result


def scale_down_limit(current: int, events: list[ScaleEvent], rules: dict, now: float) -> int:
    policy = rules.get("selectPolicy") or "Max"
    if policy == "Disabled":
        return current
    choose, result = (max, -(2 ** 31)) if policy == "Min" else (min, 2 ** 31 - 1)
    for item in rules.get("policies") or []:
        start = current + _changes_in_period(item.get("periodSeconds", 15), events, now)
        if item.get("type") == "Pods":
            proposed = start - int(item.get("value", 0))
        else:
            proposed = int(start * (1 - int(item.get("value", 0)) / 100))
        result = choose(result, proposed)
    return result


def limit_with_behavior(current: int, desired: int, minimum: int, maximum: int, up_events: list[ScaleEvent],
                        down_events: list[ScaleEvent], behavior: dict, now: float) -> tuple[int, str, str]:
    """convertDesiredReplicasWithBehaviorRate."""
    if desired > current:
        limit = max(scale_up_limit(current, up_events, behavior.get("scaleUp") or {}, now), current)
        if maximum > limit:
            allowed, reason, message = limit, "ScaleUpLimit", ("the desired replica count is increasing faster than "
                                                               "the maximum scale rate")
        else:
            allowed, reason, message = maximum, "TooManyReplicas", ("the desired replica count is more than the "
                                                                    "maximum replica count")
        if desired > allowed:
            return allowed, reason, message
    elif desired < current:
        limit = min(scale_down_limit(current, down_events, behavior.get("scaleDown") or {}, now), current)
        if minimum < limit:
            allowed, reason, message = limit, "ScaleDownLimit", ("the desired replica count is decreasing faster "
                                                                 "than the maximum scale rate")
        else:
            allowed, reason, message = minimum, "TooFewReplicas", ("the desired replica count is less than the "
                                                                   "minimum replica count")
        if desired < allowed:
            return allowed, reason, message
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"


def record_scale_event(behavior: dict | None, up_events: list[ScaleEvent], down_events: list[ScaleEvent],
                       previous: int, new: int, now: float) -> None:
    """storeScaleEvent: remembered per direction for the longest policy period of that direction."""
    if not behavior:
        return
    up = new > previous
    rules = (behavior.get("scaleUp") if up else behavior.get("scaleDown")) or {}
    events = up_events if up else down_events
    longest = max([p.get("periodSeconds", 15) for p in rules.get("policies") or []] or [0])
    for event in events:
        if event.at < now - longest:
            event.outdated = True
    fresh = ScaleEvent(abs(new - previous), now)
    for index, event in enumerate(events):
        if event.outdated:
            events[index] = fresh
            return
    events.append(fresh)


def tolerances_of(behavior: dict | None) -> Tolerances:
    """behavior.scaleUp/scaleDown.tolerance (HPAConfigurableTolerance), else the default 0.1."""
    behavior = behavior or {}

    def value(direction: str) -> float:
        raw = (behavior.get(direction) or {}).get("tolerance")
        try:
            from shipmate.quantity import parse_quantity
            return float(parse_quantity(raw).value) if raw is not None else DEFAULT_TOLERANCE
        except ValueError:
            return DEFAULT_TOLERANCE
    return Tolerances(down=value("scaleDown"), up=value("scaleUp"))
