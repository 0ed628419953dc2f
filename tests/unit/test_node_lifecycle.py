import datetime

import pytest

from apiserver.admission.default_tolerations import with_default_tolerations
from apiserver.controllers.node_lifecycle import desired_taints, eviction_time, is_stale, observe, unknown_conditions
from shipmate.durations import parse_go_duration

NOW = "2026-01-01T00:10:00Z"


def node(ready="True", heartbeat="2026-01-01T00:00:00Z", unschedulable=False, taints=None):
    return {"metadata": {"name": "n", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"unschedulable": unschedulable, **({"taints": taints} if taints else {})},
            "status": {"conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat},
                                      {"type": "MemoryPressure", "status": "False"}]}}


def lease(renew):
    return {"spec": {"renewTime": renew}}


def test_health_follows_lease_renewals_and_heartbeats_on_the_controller_clock():
    first = observe(None, node(), lease("t1"), now=100.0)
    assert first.probe_time == 100.0
    assert observe(first, node(), lease("t1"), now=130.0) is first          # nothing new
    assert observe(first, node(), lease("t2"), now=130.0).probe_time == 130.0
    assert observe(first, node(heartbeat="later"), lease("t1"), now=131.0).probe_time == 131.0
    assert not is_stale(first, 140.0, 40.0) and is_stale(first, 140.5, 40.0)


def test_unknown_conditions_keep_heartbeat_and_fill_missing():
    conditions = unknown_conditions(node(), NOW)
    ready = next(c for c in conditions if c["type"] == "Ready")
    assert ready == {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
                     "message": "Kubelet stopped posting node status.", "lastHeartbeatTime": "2026-01-01T00:00:00Z",
                     "lastTransitionTime": NOW}
    disk = next(c for c in conditions if c["type"] == "DiskPressure")
    assert disk["reason"] == "NodeStatusNeverUpdated" and disk["message"] == "Kubelet never posted node status."
    already = {"metadata": {}, "status": {"conditions": conditions}}
    assert unknown_conditions(already, NOW) is None


def test_taints_follow_ready_and_unschedulable_and_keep_others():
    keys = lambda taints: sorted((t["key"], t["effect"]) for t in taints)  # noqa: E731
    assert desired_taints(node(), NOW) == []
    unknown = desired_taints(node(ready="Unknown"), NOW)
    assert keys(unknown) == [("node.kubernetes.io/unreachable", "NoExecute"),
                             ("node.kubernetes.io/unreachable", "NoSchedule")]
    assert next(t for t in unknown if t["effect"] == "NoExecute")["timeAdded"] == NOW
    assert "timeAdded" not in next(t for t in unknown if t["effect"] == "NoSchedule")
    assert keys(desired_taints(node(ready="False"), NOW)) == [("node.kubernetes.io/not-ready", "NoExecute"),
                                                             ("node.kubernetes.io/not-ready", "NoSchedule")]
    # existing taints keep their timeAdded; foreign taints stay; recovered nodes lose ours
    tainted = node(ready="Unknown", taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                                             "timeAdded": "earlier"}, {"key": "mine", "effect": "NoSchedule"}])
    again = desired_taints(tainted, NOW)
    assert {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "earlier"} in again
    assert {"key": "mine", "effect": "NoSchedule"} in again
    tainted["status"]["conditions"][0]["status"] = "True"
    assert desired_taints(tainted, NOW) == [{"key": "mine", "effect": "NoSchedule"}]
    assert desired_taints(node(unschedulable=True), NOW) == [{"key": "node.kubernetes.io/unschedulable",
                                                             "effect": "NoSchedule"}]


def test_eviction_time_from_tolerations():
    added = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    taints = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"},
              {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]
    pod = lambda *t: {"spec": {"tolerations": list(t)}}  # noqa: E731
    assert eviction_time(pod(), taints) == added
    bounded = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
               "tolerationSeconds": 300}
    assert eviction_time(pod(bounded), taints) == added + datetime.timedelta(seconds=300)
    assert eviction_time(pod({**bounded, "tolerationSeconds": 30}, bounded), taints) == \
        added + datetime.timedelta(seconds=30)
    assert eviction_time(pod({"operator": "Exists"}), taints) is None      # tolerates everything forever
    assert eviction_time(pod(), taints[1:]) is None                        # NoSchedule never evicts


def test_default_tolerations_use_the_eviction_timeout():
    body = {"spec": {"containers": []}}
    tolerations = with_default_tolerations(body, 42)["spec"]["tolerations"]
    assert [(t["key"], t["tolerationSeconds"]) for t in tolerations] == [("node.kubernetes.io/not-ready", 42),
                                                                          ("node.kubernetes.io/unreachable", 42)]
    assert "tolerations" not in body["spec"]                               # the request body is not mutated
    own = {"spec": {"tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                     "effect": "NoExecute", "tolerationSeconds": 7}]}}
    result = with_default_tolerations(own, 42)["spec"]["tolerations"]
    assert [(t["key"], t["tolerationSeconds"]) for t in result] == [("node.kubernetes.io/unreachable", 7),
                                                                     ("node.kubernetes.io/not-ready", 42)]


@pytest.mark.parametrize("text,seconds", [("5s", 5), ("40s", 40), ("5m0s", 300), ("1h30m", 5400), ("250ms", 0.25),
                                          ("0", 0)])
def test_go_durations(text, seconds):
    assert parse_go_duration(text) == seconds


def test_bad_go_duration():
    with pytest.raises(ValueError):
        parse_go_duration("5 minutes")


def test_no_schedule_taints_follow_pressure_and_network_conditions():
    pressed = node()
    pressed["status"]["conditions"][1]["status"] = "True"                       # MemoryPressure
    pressed["status"]["conditions"] += [{"type": "DiskPressure", "status": "True"},
                                        {"type": "PIDPressure", "status": "False"},
                                        {"type": "NetworkUnavailable", "status": "True"}]
    taints = desired_taints(pressed, NOW)
    assert taints == [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"},
                      {"key": "node.kubernetes.io/disk-pressure", "effect": "NoSchedule"},
                      {"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]   # no timeAdded
    # A user's taint with one of our keys but another effect is not ours; cleared conditions drop ours.
    foreign = {"key": "node.kubernetes.io/memory-pressure", "effect": "PreferNoSchedule"}
    pressed["spec"]["taints"] = [*taints, foreign]
    for condition in pressed["status"]["conditions"][1:]:
        condition["status"] = "False"
    assert desired_taints(pressed, NOW) == [foreign]
    # Ready=False under memory pressure and cordoned: every NoSchedule taint at once, NoExecute for not-ready.
    cordoned = node(ready="False", unschedulable=True)
    cordoned["status"]["conditions"][1]["status"] = "True"
    assert sorted((t["key"], t["effect"]) for t in desired_taints(cordoned, NOW)) == [
        ("node.kubernetes.io/memory-pressure", "NoSchedule"), ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/not-ready", "NoSchedule"), ("node.kubernetes.io/unschedulable", "NoSchedule")]
