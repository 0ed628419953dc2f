import datetime

from apiserver.controllers.endpoint_rules import (MANAGED_BY, MANAGED_BY_LABEL, SERVICE_NAME_LABEL, desired_endpoints,
                                      plan_slices, resolve_target_port)
from apiserver.printers import endpoints_row, endpointslice_row, format_endpoints


def service(**spec):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "svc-uid", "labels": {"app": "web"}},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.10", "selector": {"app": "web"},
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}], **spec}}


def pod(name, ip, ready=True, labels=None, port=8080, deleting=False, phase="Running"):
    meta = {"name": name, "namespace": "default", "uid": f"uid-{name}", "labels": labels or {"app": "web"}}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta,
            "spec": {"nodeName": "node-a", "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def test_named_target_ports_resolve_per_pod():
    port = {"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}
    assert resolve_target_port(port, pod("a", "10.0.0.1", port=9000)) == 9000
    assert resolve_target_port({**port, "protocol": "UDP"}, pod("a", "10.0.0.1")) is None
    assert resolve_target_port({**port, "targetPort": 81}, pod("a", "10.0.0.1")) == 81


def test_endpoints_split_ready_and_not_ready_and_group_by_ports():
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.10"), pod("c", "10.0.0.3", ready=False),
            pod("d", "10.0.0.4", port=9000), pod("x", "10.0.0.5", labels={"app": "other"}),
            pod("e", "", ready=True), pod("f", "10.0.0.6", deleting=True), pod("g", "10.0.0.7", phase="Succeeded")]
    endpoints = desired_endpoints(service(), pods)
    assert endpoints["metadata"] == {"name": "web", "namespace": "default", "labels": {"app": "web"}}
    subsets = endpoints["subsets"]
    assert [[a["ip"] for a in s.get("addresses", [])] for s in subsets] == [["10.0.0.2", "10.0.0.10"], ["10.0.0.4"]]
    assert [a["ip"] for a in subsets[0]["notReadyAddresses"]] == ["10.0.0.3"]
    assert subsets[0]["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert subsets[0]["addresses"][0]["targetRef"] == {"kind": "Pod", "namespace": "default", "name": "b",
                                                       "uid": "uid-b"}
    assert subsets[0]["addresses"][0]["nodeName"] == "node-a"
    assert endpoints_row(endpoints, datetime.datetime.now()).cells[1] == \
        "10.0.0.2:8080,10.0.0.10:8080,10.0.0.4:9000"


def test_publish_not_ready_and_headless_label():
    endpoints = desired_endpoints(service(publishNotReadyAddresses=True, clusterIP="None"),
                                  [pod("c", "10.0.0.3", ready=False)])
    assert [a["ip"] for a in endpoints["subsets"][0]["addresses"]] == ["10.0.0.3"]
    assert endpoints["metadata"]["labels"]["service.kubernetes.io/headless"] == ""


def test_format_endpoints_lists_three_then_more():
    subsets = [{"addresses": [{"ip": f"10.0.0.{i}"} for i in range(1, 6)], "ports": [{"port": 80}]}]
    assert format_endpoints({"subsets": subsets}) == "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80 + 2 more..."
    assert format_endpoints({}) == "<none>"


def test_slices_conditions_labels_owner_and_placeholder():
    plan = plan_slices(service(), [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False),
                                   pod("t", "10.0.0.3", deleting=True)], [])
    assert len(plan.create) == 1 and not plan.update and not plan.delete
    created = plan.create[0]
    assert created["metadata"]["generateName"] == "web-"
    assert created["metadata"]["labels"] == {"app": "web", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: MANAGED_BY}
    assert created["metadata"]["ownerReferences"][0] == {"apiVersion": "v1", "kind": "Service", "name": "web",
                                                         "uid": "svc-uid", "controller": True,
                                                         "blockOwnerDeletion": True}
    assert created["ports"] == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [e["conditions"] for e in created["endpoints"]] == [
        {"ready": True, "serving": True, "terminating": False},
        {"ready": False, "serving": False, "terminating": False},
        {"ready": False, "serving": True, "terminating": True}]
    assert created["endpoints"][0]["targetRef"]["name"] == "a" and created["endpoints"][0]["nodeName"] == "node-a"
    placeholder = plan_slices(service(), [], []).create[0]
    assert placeholder["endpoints"] == [] and placeholder["ports"] is None
    assert endpointslice_row({**placeholder, "metadata": {"name": "web-x"}}, datetime.datetime.now()) \
        .cells[2:4] == ["<unset>", "<unset>"]


def stored(obj, name):
    obj = {**obj, "metadata": {**obj["metadata"], "name": name}}
    return obj


def test_slices_are_reused_and_rewritten_in_place():
    pods = [pod(f"p{i}", f"10.0.1.{i}") for i in range(1, 6)]
    first = plan_slices(service(), pods, [], max_per_slice=2)
    assert [len(s["endpoints"]) for s in first.create] == [2, 2, 1]
    existing = [stored(s, f"web-{i}") for i, s in enumerate(first.create)]
    assert plan_slices(service(), pods, existing, max_per_slice=2).empty()
    pods[4]["status"]["conditions"][0]["status"] = "False"
    changed = plan_slices(service(), pods, existing, max_per_slice=2)
    assert [s["metadata"]["name"] for s in changed.update] == ["web-2"] and not changed.create
    gone = plan_slices(None, pods, existing)
    assert [s["metadata"]["name"] for s in gone.delete] == ["web-0", "web-1", "web-2"]
    shrunk = plan_slices(service(), pods[:1], existing, max_per_slice=2)
    assert len(shrunk.update) == 1 and [s["metadata"]["name"] for s in shrunk.delete] == ["web-1", "web-2"]
    other_owner = service()
    other_owner["metadata"]["uid"] = "new-uid"  # a Service recreated under the same name
    replaced = plan_slices(other_owner, pods, existing, max_per_slice=2)
    assert len(replaced.delete) == 3 and len(replaced.create) == 3


def test_mirroring_of_selector_less_services():
    from apiserver.controllers.endpoint_rules import plan_mirrored_slices
    selectorless = {"metadata": {"name": "ext", "namespace": "default", "uid": "s"}, "spec": {"ports": [{"port": 1}]}}
    endpoints = {"metadata": {"name": "ext", "namespace": "default", "uid": "ep-uid", "labels": {"team": "db"},
                              "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "a": "b"}},
                 "subsets": [{"addresses": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::1"}],
                              "notReadyAddresses": [{"ip": "192.0.2.12", "nodeName": "n"}],
                              "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}
    plan = plan_mirrored_slices(selectorless, endpoints, [])
    assert len(plan.create) == 1
    mirrored = plan.create[0]
    assert mirrored["metadata"]["labels"] == {"team": "db", SERVICE_NAME_LABEL: "ext",
                                              MANAGED_BY_LABEL: "endpointslicemirroring-controller.k8s.io"}
    assert mirrored["metadata"]["annotations"] == {"a": "b"}
    assert mirrored["metadata"]["ownerReferences"][0]["kind"] == "Endpoints"
    assert mirrored["endpoints"] == [{"addresses": ["192.0.2.10"], "conditions": {"ready": True}},
                                     {"addresses": ["192.0.2.12"], "conditions": {"ready": False}, "nodeName": "n"}]
    assert mirrored["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    existing = [{**mirrored, "metadata": {**mirrored["metadata"], "name": "ext-1"}}]
    assert plan_mirrored_slices(selectorless, endpoints, existing).empty()
    with_selector = {**selectorless, "spec": {"selector": {"app": "x"}}}
    assert plan_mirrored_slices(with_selector, endpoints, existing).delete == existing
    skipped = {**endpoints, "metadata": {**endpoints["metadata"],
                                         "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}}}
    assert plan_mirrored_slices(selectorless, skipped, existing).delete == existing


def test_endpoints_beyond_capacity_are_truncated_ready_first():
    from apiserver.controllers.endpoint_rules import OVER_CAPACITY_ANNOTATION
    pods = [pod(f"r{i}", f"10.1.{i // 250}.{i % 250 + 1}") for i in range(990)] + \
        [pod(f"n{i}", f"10.2.0.{i + 1}", ready=False) for i in range(20)]
    endpoints = desired_endpoints(service(), pods)
    assert endpoints["metadata"]["annotations"] == {OVER_CAPACITY_ANNOTATION: "truncated"}
    subset = endpoints["subsets"][0]
    assert len(subset["addresses"]) == 990 and len(subset["notReadyAddresses"]) == 10
    assert "annotations" not in desired_endpoints(service(), pods[:1000])["metadata"]


def test_slice_tracker_prefers_our_newer_writes_over_late_events():
    from apiserver.controllers.slice_tracker import SliceTracker

    def slice_at(name, revision, labels=None):
        return {"metadata": {"name": name, "namespace": "default", "resourceVersion": str(revision),
                             "labels": labels if labels is not None else {SERVICE_NAME_LABEL: "web"}}}
    tracker = SliceTracker(lambda obj: "default/" + obj["metadata"]["labels"][SERVICE_NAME_LABEL]
                           if obj["metadata"]["labels"].get(SERVICE_NAME_LABEL) else None)
    tracker.wrote("default/web", slice_at("web-a", 5))           # our create, before its watch event
    assert [s["metadata"]["name"] for s in tracker.slices("default/web")] == ["web-a"]
    tracker.wrote("default/web", slice_at("web-a", 7))           # our update
    assert tracker.observe("MODIFIED", slice_at("web-a", 5)) == "default/web"  # the late create event
    assert tracker.slices("default/web")[0]["metadata"]["resourceVersion"] == "7"
    tracker.removed("default/web", slice_at("web-a", 7))
    tracker.observe("MODIFIED", slice_at("web-a", 7))           # an old event must not bring it back
    assert tracker.slices("default/web") == []
    tracker.observe("DELETED", slice_at("web-a", 8))
    assert tracker.observe("ADDED", slice_at("other", 9, labels={})) is None
