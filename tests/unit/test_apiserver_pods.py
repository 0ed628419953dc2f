import copy

import pytest

from apiserver.kinds.namespaces import NamespaceStrategy
from apiserver.kinds.nodes import NodeStrategy
from apiserver.kinds.pods import PodStrategy
from shipmate.images import default_pull_policy
from shipmate.qos import compute_qos_class as qos_class

STRATEGY = PodStrategy()


def pod(**spec):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


def prepared(obj):
    STRATEGY.default(obj)
    STRATEGY.prepare_for_create(obj)
    return obj


def test_defaults_like_upstream():
    obj = prepared(pod(containers=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "r/x:1.0",
                                                                       "ports": [{"containerPort": 80}]}]))
    spec = obj["spec"]
    assert spec["restartPolicy"] == "Always" and spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30 and spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True and "priority" not in spec  # Priority admission sets it (upstream)
    assert [c["imagePullPolicy"] for c in spec["containers"]] == ["Always", "IfNotPresent"]
    assert spec["containers"][0]["terminationMessagePath"] == "/dev/termination-log"
    assert spec["containers"][0]["terminationMessagePolicy"] == "File"
    assert spec["containers"][1]["ports"][0]["protocol"] == "TCP"
    assert "tolerations" not in spec  # DefaultTolerationSeconds admission adds them, not defaulting (upstream)
    assert obj["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_pull_policy_by_tag():
    assert default_pull_policy("busybox") == "Always"
    assert default_pull_policy("127.0.0.1:5000/library/busybox:latest") == "Always"
    assert default_pull_policy("127.0.0.1:5000/library/busybox") == "Always"
    assert default_pull_policy("127.0.0.1:5000/library/busybox:1.36") == "IfNotPresent"
    assert default_pull_policy("busybox@sha256:abc") == "IfNotPresent"


def test_resource_quantities_are_canonicalized():
    obj = prepared(pod(containers=[{"name": "c", "image": "x",
                                    "resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}}}]))
    assert obj["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}


def test_qos_class():
    guaranteed = {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}
    burstable = {"containers": [{"resources": {"requests": {"cpu": "100m"}}}]}
    assert qos_class(guaranteed) == "Guaranteed"
    assert qos_class(burstable) == "Burstable"
    assert qos_class({"containers": [{}]}) == "BestEffort"


def fields(errors):
    return [(e.field, e.reason) for e in errors]


def test_validation_errors_name_fields():
    obj = prepared(pod(containers=[{"name": "Bad_Name"}, {"name": "Bad_Name", "image": "x",
                                                          "ports": [{"containerPort": 70000}]}]))
    obj["metadata"]["name"] = "Web!"
    found = fields(STRATEGY.validate(obj))
    assert ("metadata.name", "FieldValueInvalid") in found
    assert ("spec.containers[0].name", "FieldValueInvalid") in found
    assert ("spec.containers[0].image", "FieldValueRequired") in found
    assert ("spec.containers[1].name", "FieldValueDuplicate") in found
    assert ("spec.containers[1].ports[0].containerPort", "FieldValueInvalid") in found
    assert fields(STRATEGY.validate(prepared(pod(containers=[])))) == [("spec.containers", "FieldValueRequired")]
    assert STRATEGY.validate(prepared(pod())) == []
    image_error = STRATEGY.validate(prepared(pod(containers=[{"name": "c"}])))[0]
    assert image_error.message() == "Required value"


def test_requests_above_limits_rejected():
    obj = prepared(pod(containers=[{"name": "c", "image": "x",
                                    "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]))
    assert fields(STRATEGY.validate(obj)) == [("spec.containers[0].resources.requests", "FieldValueInvalid")]


def test_spec_immutable_except_image():
    old = prepared(pod())
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "busybox:2"
    assert STRATEGY.validate_update(new, old) == []
    new["spec"]["nodeName"] = "node-a"
    assert fields(STRATEGY.validate_update(new, old)) == [("spec", "FieldValueForbidden")]


def test_status_and_spec_split():
    old = prepared(pod())
    update = copy.deepcopy(old)
    update["status"] = {"phase": "Running"}
    STRATEGY.prepare_for_update(update, old)
    assert update["status"]["phase"] == "Pending"
    status_update = copy.deepcopy(old)
    status_update["status"] = {"phase": "Running"}
    status_update["spec"]["containers"][0]["image"] = "other"
    STRATEGY.prepare_for_status_update(status_update, old)
    assert status_update["status"] == {"phase": "Running"}
    assert status_update["spec"]["containers"][0]["image"] == "busybox"


def test_status_update_checks_addresses():
    old = prepared(pod(nodeName="node-a"))
    new = copy.deepcopy(old)
    new["status"].update({"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}]})
    assert STRATEGY.validate_status_update(new, old) == []
    new["status"]["podIPs"] = [{"ip": "10.244.0.500"}]
    assert fields(STRATEGY.validate_status_update(new, old)) == [("status.podIPs[0].ip", "FieldValueInvalid")]


def test_graceful_deletion_seconds():
    bound = prepared(pod(nodeName="node-a"))
    assert STRATEGY.graceful_delete_seconds(bound, None) == 30
    assert STRATEGY.graceful_delete_seconds(bound, 5) == 5
    assert STRATEGY.graceful_delete_seconds(bound, 0) == 0
    assert STRATEGY.graceful_delete_seconds(prepared(pod()), None) == 0
    bound["status"]["phase"] = "Succeeded"
    assert STRATEGY.graceful_delete_seconds(bound, None) == 0


def test_field_values_for_selectors():
    obj = prepared(pod(nodeName="node-a"))
    values = STRATEGY.field_values(obj)
    assert values["spec.nodeName"] == "node-a" and values["status.phase"] == "Pending"
    assert values["metadata.namespace"] == "default"


def test_node_and_namespace_defaults():
    node = {"metadata": {"name": "n"}, "spec": {"podCIDR": "10.244.1.0/24"},
            "status": {"capacity": {"cpu": "2000m", "memory": "1024Mi"}}}
    NodeStrategy().default(node)
    assert node["spec"]["podCIDRs"] == ["10.244.1.0/24"]
    assert NodeStrategy().validate(node) == []
    assert node["status"]["capacity"] == {"cpu": "2", "memory": "1Gi"}
    assert node["status"]["allocatable"] == {"cpu": "2", "memory": "1Gi"}
    bad = {"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "lots"}}}
    NodeStrategy().default(bad)
    assert [e.field for e in NodeStrategy().validate(bad)] == ["status.capacity[cpu]", "status.allocatable[cpu]"]
    namespace = {"metadata": {"name": "team-a"}}
    strategy = NamespaceStrategy()
    strategy.default(namespace)
    strategy.prepare_for_create(namespace)
    assert namespace["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"
    assert namespace["spec"]["finalizers"] == ["kubernetes"] and namespace["status"]["phase"] == "Active"
    assert strategy.validate({"metadata": {"name": "a.b"}})[0].field == "metadata.name"


def test_probe_handlers_get_upstream_defaults():
    obj = prepared(pod(containers=[{"name": "c", "image": "x",
                                    "readinessProbe": {"httpGet": {"port": 80}},
                                    "livenessProbe": {"grpc": {"port": 9000}}}]))
    container = obj["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"] == {"port": 80, "path": "/", "scheme": "HTTP"}
    assert container["livenessProbe"]["grpc"] == {"port": 9000, "service": ""}
    assert container["livenessProbe"]["periodSeconds"] == 10


def test_canonical_quantities_are_remembered_and_bad_ones_still_refused():
    from shipmate.quantity import QuantityError, _canonical_string, canonical
    _canonical_string.cache_clear()
    assert canonical("1000m") == canonical("1000m") == "1" and canonical(1) == "1"
    assert _canonical_string.cache_info().hits == 1
    for bad in (True, {"a": 1}, ["1"], "1x"):
        with pytest.raises(QuantityError):
            canonical(bad)
