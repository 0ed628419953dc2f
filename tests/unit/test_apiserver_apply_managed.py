"""Managed fields and server-side apply over plain JSON objects (apiserver/apply/)."""
import json

import pytest

from apiserver.apply.fieldpath import field_set, from_fields_v1, path_string, to_fields_v1
from apiserver.apply.managed import ApplyConflict, apply, parse_entries, record_update

NOW = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T00:01:00Z"
CONFIG = {"apiVersion": "apps/v1", "kind": "Deployment",
          "metadata": {"name": "web", "labels": {"app": "web", "a": "1"}},
          "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                       {"name": "c", "image": "i:1", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]}}}}


def entries(obj):
    return {(e.manager, e.operation, e.subresource): e.fields for e in parse_entries(obj)}


def test_fields_v1_round_trip_and_upstream_shape():
    paths = field_set(CONFIG)
    fields = to_fields_v1(paths)
    assert fields["f:spec"]["f:selector"] == {}  # label selectors are atomic
    container = fields["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert container["."] == {} and container["f:env"]['k:{"name":"B"}'] == {".": {}, "f:name": {}, "f:value": {}}
    assert "f:name" not in fields["f:metadata"] and "f:apiVersion" not in fields
    assert from_fields_v1(fields) == paths
    assert path_string(("f:spec", "f:template", "f:spec", "f:containers", 'k:{"name":"c"}', "f:image")) == \
        '.spec.template.spec.containers[name="c"].image'


def test_update_owns_what_it_changes_and_takes_it_from_others():
    created = dict(CONFIG, metadata=dict(CONFIG["metadata"]))
    record_update(created, None, "kubectl-create", "", NOW)
    owned = entries(created)[("kubectl-create", "Update", "")]
    assert ("f:spec", "f:replicas") in owned and ("f:metadata", "f:labels") in owned  # "." for a new map
    scaled = {**created, "spec": {**created["spec"], "replicas": 5}}
    record_update(scaled, created, "kubectl-scale", "", LATER)
    managers = entries(scaled)
    assert managers[("kubectl-scale", "Update", "")] == {("f:spec", "f:replicas")}
    assert ("f:spec", "f:replicas") not in managers[("kubectl-create", "Update", "")]
    unchanged = {**scaled}
    record_update(unchanged, scaled, "someone", "", LATER)
    assert unchanged["metadata"]["managedFields"] == scaled["metadata"]["managedFields"]
    reset = {**scaled, "metadata": {**scaled["metadata"], "managedFields": [{}]}}
    record_update(reset, scaled, "someone", "", LATER)
    assert "managedFields" not in reset["metadata"]


def test_apply_conflicts_force_and_shared_ownership():
    live = apply(None, CONFIG, "kubectl", False, NOW)
    scaled = {**live, "spec": {**live["spec"], "replicas": 5}}
    record_update(scaled, live, "kubectl-client-side-apply", "", LATER)
    with pytest.raises(ApplyConflict) as failed:
        apply(scaled, CONFIG, "kubectl", False, LATER)
    assert str(failed.value) == ('Apply failed with 1 conflict: conflict with "kubectl-client-side-apply" using '
                                 'apps/v1: .spec.replicas')
    # Same value: no conflict, both own it.
    same = {**CONFIG, "spec": {**CONFIG["spec"], "replicas": 5}}
    shared = apply(scaled, same, "kubectl", False, LATER)
    assert ("f:spec", "f:replicas") in entries(shared)[("kubectl-client-side-apply", "Update", "")]
    forced = apply(scaled, CONFIG, "kubectl", True, LATER)
    assert forced["spec"]["replicas"] == 2
    assert ("kubectl-client-side-apply", "Update", "") not in entries(forced)


def test_apply_removes_fields_it_stops_applying_unless_owned_by_others():
    live = apply(None, CONFIG, "kubectl", False, NOW)
    labelled = {**live, "metadata": {**live["metadata"], "labels": {**live["metadata"]["labels"], "x": "y"}}}
    record_update(labelled, live, "kubectl-label", "", LATER)
    smaller = {**CONFIG, "metadata": {"name": "web", "labels": {"app": "web"}},
               "spec": {**CONFIG["spec"], "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                   "containers": [{"name": "c", "image": "i:1", "env": [{"name": "A", "value": "1"}]}]}}}}
    result = apply(labelled, smaller, "kubectl", False, LATER)
    assert result["metadata"]["labels"] == {"app": "web", "x": "y"}
    assert result["spec"]["template"]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "1"}]
    # Another manager co-owning a field keeps it when the applier drops it.
    other = apply(result, {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                           "spec": {"replicas": 2}}, "other", False, LATER)
    dropped = {**smaller, "spec": {k: v for k, v in smaller["spec"].items() if k != "replicas"}}
    assert apply(other, dropped, "kubectl", False, LATER)["spec"]["replicas"] == 2
    assert "replicas" not in apply(result, dropped, "kubectl", False, LATER)["spec"]


def test_status_writes_record_a_status_subresource_entry():
    live = apply(None, CONFIG, "kubectl", False, NOW)
    with_status = {**live, "status": {"replicas": 2, "conditions": [{"type": "Available", "status": "True"}]}}
    record_update(with_status, live, "kube-controller-manager", "status", LATER)
    status_fields = entries(with_status)[("kube-controller-manager", "Update", "status")]
    assert ("f:status", "f:conditions", 'k:{"type":"Available"}', "f:status") in status_fields
    assert all(path[0] == "f:status" for path in status_fields)


# Keys that reach every branch of the field walk: keyed lists (containers, ports, env, finalizers,
# ownerReferences, conditions), atomic maps (selector, nodeSelector), always-present structs (spec, template).
_FIELD_NAMES = ["metadata", "spec", "status", "template", "containers", "ports", "env", "name", "port", "uid",
                "type", "selector", "nodeSelector", "finalizers", "ownerReferences", "conditions", "labels",
                "value", "apiVersion", "kind", "namespace", "x"]


def _json_values():
    from hypothesis import strategies as st
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b", "c", ""]))
    return st.recursive(scalars, lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.sampled_from(_FIELD_NAMES), children, max_size=5)),
        max_leaves=30)


def test_create_bookkeeping_matches_the_field_set_of_the_object():
    """fields_v1_of (one walk, used on every create) writes exactly what to_fields_v1 of the object's field
    set writes, key order included, for any JSON object: duplicate list keys, empty keyed lists, atomic
    maps, items that are not maps."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from apiserver.apply.fieldpath import fields_v1_of

    objects = st.dictionaries(st.sampled_from(_FIELD_NAMES), _json_values(), max_size=6)

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(objects, st.sampled_from(["", "status"]))
    def check(obj, subresource):
        expected = to_fields_v1(field_set(obj, nodes=True, subresource=subresource))
        got = fields_v1_of(obj, subresource)
        assert got == expected
        assert json.dumps(got) == json.dumps(expected)

    check()
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
           "spec": {"containers": [{"name": "c", "image": "i", "ports": []}, {"name": "c", "env": []}],
                    "nodeSelector": {"k": "v"}, "volumes": []}}
    assert fields_v1_of(pod) == to_fields_v1(field_set(pod, nodes=True))
    created = json.loads(json.dumps(pod))
    record_update(created, None, "kubectl", "", NOW)
    assert created["metadata"]["managedFields"] == [
        {"manager": "kubectl", "operation": "Update", "apiVersion": "v1", "time": NOW, "fieldsType": "FieldsV1",
         "fieldsV1": to_fields_v1(field_set(pod, nodes=True))}]


def test_service_ports_are_keyed_by_port_and_protocol_as_upstreams_list_map_keys():
    """Upstream's ServiceSpec.ports is a list map keyed by port and protocol (protocol defaulting to TCP):
    53/UDP and 53/TCP stay two items through repeated applies, and an item without protocol is the TCP one."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "dns", "namespace": "kube-system"},
               "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}
    created = apply(None, service, "addons", False, NOW)
    again = apply(created, service, "addons", False, LATER)
    assert again["spec"]["ports"] == service["spec"]["ports"]
    owned = entries(again)[("addons", "Apply", "")]
    assert ("f:spec", "f:ports", 'k:{"port":53,"protocol":"UDP"}', "f:name") in owned
    assert ("f:spec", "f:ports", 'k:{"port":53,"protocol":"TCP"}', "f:name") in owned
    renamed = {**service, "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                                             {"name": "tcp", "port": 53}]}}
    merged = apply(again, renamed, "addons", False, LATER)
    # (protocol, no longer applied, goes; the server's defaulting after the merge puts TCP back, as upstream's)
    assert [(port["name"], port["port"], port.get("protocol", "TCP")) for port in merged["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("tcp", 53, "TCP")]
