"""The HPA's replica computation (cases after upstream's replica_calculator_test.go) and its stabilization and
rate limits (horizontal_test.go's normalization cases)."""
from __future__ import annotations

import pytest

from apiserver.controllers import hpa_rules as rules
from apiserver.controllers.hpa_rules import MetricError, PodInfo, PodMetric, Recommendation, ScaleEvent, Tolerances

NOW = 10_000.0
STARTED = NOW - 3600          # long past the CPU initialization period


def _pods(requests: list[int], ready: list[bool] | None = None, phases: list[str] | None = None) -> list[PodInfo]:
    ready = ready or [True] * len(requests)
    phases = phases or ["Running"] * len(requests)
    return [PodInfo(f"p{i}", phases[i], False, ready[i], STARTED + 10, STARTED, r)
            for i, r in enumerate(requests)]


def _metrics(levels: list[int | None]) -> dict[str, PodMetric]:
    return {f"p{i}": PodMetric(v, NOW - 5, 30) for i, v in enumerate(levels) if v is not None}


def test_scale_up():
    proposal = rules.resource_replicas(3, _pods([1000] * 3), _metrics([300, 500, 700]), "cpu", NOW,
                                       target_utilization=30)
    assert (proposal.replicas, proposal.utilization, proposal.average_milli) == (5, 50, 500)


def test_scale_up_with_an_unready_pod_scales_less():
    proposal = rules.resource_replicas(3, _pods([1000] * 3, ready=[False, True, True]),
                                       _metrics([300, 500, 700]), "cpu", NOW, target_utilization=30)
    assert (proposal.replicas, proposal.utilization) == (4, 60)


def test_scale_up_ignores_pending_and_failed_and_deleted_pods():
    pods = _pods([1000] * 4, phases=["Running", "Running", "Failed", "Pending"])
    pods.append(PodInfo("p4", "Running", True, True, STARTED + 10, STARTED, 1000))
    proposal = rules.resource_replicas(3, pods, _metrics([900, 900, 700, 100, 50]), "cpu", NOW,
                                       target_utilization=30)
    assert (proposal.replicas, proposal.utilization) == (6, 90)     # the pending pod counts as 0 for a scale up
    proposal = rules.resource_replicas(3, pods, _metrics([300, 500, 700, 100, 50]), "cpu", NOW,
                                       target_utilization=30)
    assert proposal.replicas == 3     # 40 % says up, with the pending pod at 0 it says down: no change


def test_scale_down():
    proposal = rules.resource_replicas(5, _pods([1000] * 5), _metrics([100, 300, 500, 250, 250]), "cpu", NOW,
                                       target_utilization=50)
    assert (proposal.replicas, proposal.utilization) == (3, 28)


def test_within_tolerance_no_change():
    proposal = rules.resource_replicas(3, _pods([900, 1100, 1000]), _metrics([1010, 1030, 1020]), "cpu", NOW,
                                       target_utilization=100)
    assert (proposal.replicas, proposal.utilization) == (3, 102)


def test_configurable_tolerance():
    proposal = rules.resource_replicas(3, _pods([1000] * 3), _metrics([1150, 1150, 1150]), "cpu", NOW,
                                       target_utilization=100, tolerances=Tolerances(up=0.2))
    assert proposal.replicas == 3
    proposal = rules.resource_replicas(3, _pods([1000] * 3), _metrics([1150, 1150, 1150]), "cpu", NOW,
                                       target_utilization=100)
    assert proposal.replicas == 4


def test_missing_metrics_at_target_no_change():
    proposal = rules.resource_replicas(2, _pods([1000, 1000]), _metrics([1000, None]), "cpu", NOW,
                                       target_utilization=100)
    assert proposal.replicas == 2


def test_missing_metrics_scale_up_counts_them_as_zero():
    proposal = rules.resource_replicas(4, _pods([1000] * 4), _metrics([1400, 1500, 1600, None]), "cpu", NOW,
                                       target_utilization=100)
    assert proposal.replicas == 5      # (1400+1500+1600+0)/4000 = 1.125 → ceil(4.5)


def test_missing_metrics_scale_down_counts_them_at_the_target():
    proposal = rules.resource_replicas(4, _pods([1000] * 4), _metrics([400, 500, 600, None]), "cpu", NOW,
                                       target_utilization=100)
    assert proposal.replicas == 3      # (400+500+600+1000)/4000 = 0.625 → ceil(2.5)


def test_missing_metrics_that_would_flip_the_direction_keep_the_count():
    # ready usage says scale up (1.2), filling the missing pod with 0 says scale down (0.6)
    proposal = rules.resource_replicas(2, _pods([1000, 1000]), _metrics([1200, None]), "cpu", NOW,
                                       target_utilization=100)
    assert proposal.replicas == 2


def test_missing_request_is_an_error():
    pods = [PodInfo("p0", request_milli=None, missing_request="app", start_time=STARTED, ready_transition=STARTED)]
    with pytest.raises(MetricError, match="missing request for cpu in container app of Pod p0"):
        rules.resource_replicas(1, pods, _metrics([100]), "cpu", NOW, target_utilization=50)


def test_no_metrics_and_no_pods_are_errors():
    with pytest.raises(MetricError, match="did not receive metrics"):
        rules.resource_replicas(2, _pods([1000, 1000]), {}, "cpu", NOW, target_utilization=50)
    with pytest.raises(MetricError, match="no pods returned by selector"):
        rules.resource_replicas(2, [], {}, "cpu", NOW, target_utilization=50)


def test_average_value_target():
    proposal = rules.resource_replicas(2, _pods([1000, 1000]), _metrics([800, 1000]), "memory", NOW,
                                       target_average_milli=300)
    assert (proposal.replicas, proposal.utilization, proposal.average_milli) == (6, None, 900)


def test_cpu_of_an_initializing_pod_measured_before_ready_is_unready():
    pod = PodInfo("p0", "Running", False, True, ready_transition=NOW - 10, start_time=NOW - 60, request_milli=1000)
    old = PodInfo("p1", "Running", False, True, ready_transition=STARTED, start_time=STARTED, request_milli=1000)
    metrics = {"p0": PodMetric(2000, NOW - 15, 30), "p1": PodMetric(1000, NOW - 5, 30)}
    groups = rules.group_pods([pod, old], metrics, cpu=True, now=NOW)
    assert groups.unready == {"p0"} and groups.ready == 1
    # memory does not care about readiness
    assert rules.group_pods([pod, old], metrics, cpu=False, now=NOW).ready == 2


def test_stabilize_without_behavior_keeps_the_highest_recent_recommendation():
    history: list[Recommendation] = []
    assert rules.stabilize(history, 5, NOW, 300) == 5
    assert rules.stabilize(history, 2, NOW + 60, 300) == 5
    assert rules.stabilize(history, 1, NOW + 320, 300) == 2       # 5 left the window, 2 did not
    assert len(history) == 2                                       # an old slot is reused


def test_limits_without_behavior():
    assert rules.limit_without_behavior(1, 10, 1, 10) == (4, "ScaleUpLimit", "the desired replica count is "
                                                          "increasing faster than the maximum scale rate")
    assert rules.limit_without_behavior(5, 20, 1, 8)[:2] == (8, "TooManyReplicas")
    assert rules.limit_without_behavior(5, 0, 2, 8)[:2] == (2, "TooFewReplicas")
    assert rules.limit_without_behavior(5, 6, 2, 8)[:2] == (6, "DesiredWithinRange")


DEFAULT_BEHAVIOR = {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                             {"type": "Percent", "value": 100, "periodSeconds": 15}]},
                    "scaleDown": {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                                  "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}}


def test_behavior_rate_limits():
    assert rules.limit_with_behavior(1, 10, 1, 20, [], [], DEFAULT_BEHAVIOR, NOW)[:2] == (5, "ScaleUpLimit")
    assert rules.limit_with_behavior(10, 40, 1, 30, [], [], DEFAULT_BEHAVIOR, NOW)[:2] == (20, "ScaleUpLimit")
    # 3 pods added in the current period: this period started at 7 → max(7+4, 14) = 14
    events = [ScaleEvent(3, NOW - 5)]
    assert rules.limit_with_behavior(10, 40, 1, 30, events, [], DEFAULT_BEHAVIOR, NOW)[:2] == (14, "ScaleUpLimit")
    slow_down = {"scaleDown": {"selectPolicy": "Max", "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
    assert rules.limit_with_behavior(5, 1, 1, 10, [], [], slow_down, NOW)[:2] == (4, "ScaleDownLimit")
    assert rules.limit_with_behavior(5, 1, 1, 10, [], [ScaleEvent(1, NOW - 30)], slow_down, NOW)[0] == 5
    disabled = {"scaleDown": {"selectPolicy": "Disabled", "policies": []}}
    assert rules.limit_with_behavior(5, 1, 1, 10, [], [], disabled, NOW)[0] == 5
    assert rules.limit_with_behavior(5, 4, 1, 10, [], [], DEFAULT_BEHAVIOR, NOW)[:2] == (4, "DesiredWithinRange")


def test_behavior_stabilization_windows():
    history: list[Recommendation] = []
    assert rules.stabilize_with_behavior(history, 4, 4, NOW, 0, 60)[0] == 4
    result = rules.stabilize_with_behavior(history, 4, 1, NOW + 10, 0, 60)
    assert result[:2] == (4, "ScaleDownStabilized")
    assert rules.stabilize_with_behavior(history, 4, 1, NOW + 80, 0, 60)[0] == 1
    up_history = [Recommendation(2, NOW - 5)]
    assert rules.stabilize_with_behavior(up_history, 2, 6, NOW, 30, 300)[:2] == (2, "ScaleUpStabilized")


def test_scale_events_are_recorded_per_direction():
    up: list[ScaleEvent] = []
    down: list[ScaleEvent] = []
    rules.record_scale_event(DEFAULT_BEHAVIOR, up, down, 1, 3, NOW)
    rules.record_scale_event(DEFAULT_BEHAVIOR, up, down, 3, 2, NOW + 1)
    assert [e.change for e in up] == [2] and [e.change for e in down] == [1]
    rules.record_scale_event(DEFAULT_BEHAVIOR, up, down, 2, 4, NOW + 100)     # the first is outdated: reused
    assert [e.change for e in up] == [2] and up[0].at == NOW + 100
    rules.record_scale_event(None, up, down, 4, 8, NOW)
    assert len(up) == 1


def test_tolerances_from_behavior():
    assert rules.tolerances_of(None) == Tolerances(0.1, 0.1)
    assert rules.tolerances_of({"scaleUp": {"tolerance": "0.05"}, "scaleDown": {}}) == Tolerances(down=0.1, up=0.05)
