"""storage.k8s.io/v1 CSIStorageCapacity's strategy: registration, defaulting (canonical quantities), upstream's
validation messages, the immutable GetCapacity inputs, kubectl's columns, the schema and strict field shape."""
from __future__ import annotations

import copy
import datetime
from typing import Any

from apiserver.errors import invalid_object
from apiserver.fieldcheck import unknown_fields
from apiserver.http.openapi import definition_name, schema_name
from apiserver.kinds import all_strategies
from apiserver.kinds.csistoragecapacities import CSIStorageCapacityStrategy, csi_storage_capacity_row
from apiserver.openapi_schemas import DEFINITIONS

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
STRATEGY = CSIStorageCapacityStrategy()
DNS_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                 "and must start and end with an alphanumeric character")


def capacity(**fields: Any) -> dict[str, Any]:
    obj = {"apiVersion": "storage.k8s.io/v1", "kind": "CSIStorageCapacity",
           "metadata": {"name": "csisc-1", "namespace": "default", "creationTimestamp": "2025-12-31T23:58:00Z"},
           "storageClassName": "fast",
           "nodeTopology": {"matchExpressions": [{"key": "node", "operator": "In", "values": ["node1"]}]},
           "capacity": "1Mi"}
    obj.update(fields)
    return {key: value for key, value in obj.items() if value is not None}


def message(obj: dict[str, Any], old: dict[str, Any] | None = None) -> str:
    problems = STRATEGY.validate(obj) if old is None else STRATEGY.validate_update(obj, old)
    return invalid_object("storage.k8s.io", "CSIStorageCapacity", obj["metadata"]["name"], problems).message \
        if problems else ""


def test_registered_namespaced_without_status_short_names_or_generation():
    info = next(s.info for s in all_strategies() if s.info.kind == "CSIStorageCapacity")
    assert (info.group, info.version, info.plural, info.singular) == \
        ("storage.k8s.io", "v1", "csistoragecapacities", "csistoragecapacity")
    assert info.namespaced and info.short_names == () and info.subresources == () and info.categories == ()
    assert not STRATEGY.has_status and not STRATEGY.tracks_generation


def test_defaults_store_quantities_canonically_and_leave_the_rest():
    obj = capacity(capacity="1024Mi", maximumVolumeSize="1000M")
    original = copy.deepcopy(obj)
    STRATEGY.default(obj)
    assert obj["capacity"] == "1Gi" and obj["maximumVolumeSize"] == "1G"
    assert {k: v for k, v in obj.items() if k not in ("capacity", "maximumVolumeSize")} == \
        {k: v for k, v in original.items() if k not in ("capacity", "maximumVolumeSize")}
    unset = capacity(capacity=None)
    STRATEGY.default(unset)
    assert "capacity" not in unset and "maximumVolumeSize" not in unset


def test_validation_messages():
    assert message(capacity()) == ""
    assert message(capacity(nodeTopology=None, capacity=None)) == ""  # both optional
    assert message(capacity(nodeTopology={})) == ""  # empty: every node
    assert message(capacity(capacity="0", maximumVolumeSize="0")) == ""
    missing = message(capacity(storageClassName=None))
    assert f'storageClassName: Invalid value: "": {DNS_SUBDOMAIN}' in missing
    assert f'storageClassName: Invalid value: "Fast_SSD": {DNS_SUBDOMAIN}' in \
        message(capacity(storageClassName="Fast_SSD"))
    assert 'capacity: Invalid value: "-1Gi": must be greater than or equal to 0' in \
        message(capacity(capacity="-1024Mi"))
    # Upstream checks only capacity's sign.
    assert message(capacity(maximumVolumeSize="-1Gi")) == ""
    assert "maximumVolumeSize: Invalid value: \"lots\": quantities must match the regular expression" in \
        message(capacity(maximumVolumeSize="lots"))
    bad_selector = message(capacity(nodeTopology={
        "matchLabels": {"bad key!": "v"},
        "matchExpressions": [{"key": "zone", "operator": "In"}, {"key": "zone", "operator": "Near"},
                             {"key": "zone", "operator": "Exists", "values": ["a"]}]}))
    assert 'nodeTopology.matchLabels: Invalid value: "bad key!"' in bad_selector
    assert "nodeTopology.matchExpressions[0].values: Required value: must be specified when `operator` is " \
           "'In' or 'NotIn'" in bad_selector
    assert 'nodeTopology.matchExpressions[1].operator: Invalid value: "Near": not a valid selector operator' \
        in bad_selector
    assert "nodeTopology.matchExpressions[2].values: Forbidden: may not be specified when `operator` is " \
           "'Exists' or 'DoesNotExist'" in bad_selector
    assert 'metadata.name: Invalid value: "Bad_Name"' in message(
        capacity(metadata={"name": "Bad_Name", "namespace": "default"}))
    assert "metadata.namespace: Required value" in message(capacity(metadata={"name": "x"}))


def test_storage_class_and_topology_are_immutable_capacity_is_not():
    old = capacity(maximumVolumeSize="2Gi")
    old["metadata"]["resourceVersion"] = "1"
    assert message(capacity(capacity="5Gi", maximumVolumeSize=None), old) == ""
    assert message(capacity(capacity=None), old) == ""
    assert message(capacity(storageClassName="fast-suffix"), old) == \
        'CSIStorageCapacity.storage.k8s.io "csisc-1" is invalid: storageClassName: Invalid value: "fast-suffix": ' \
        'field is immutable'
    moved = capacity(nodeTopology={"matchLabels": {"zone": "b"}})
    assert message(moved, old) == \
        'CSIStorageCapacity.storage.k8s.io "csisc-1" is invalid: nodeTopology: Invalid value: ' \
        'v1.LabelSelector{MatchLabels:map[string]string{"zone":"b"}, MatchExpressions:[]v1.LabelSelectorRequirement' \
        '(nil)}: field is immutable'
    assert message(capacity(nodeTopology=None), old) == \
        'CSIStorageCapacity.storage.k8s.io "csisc-1" is invalid: nodeTopology: Invalid value: null: field is immutable'
    # Semantic equality: an empty list or map is the same as none.
    same = capacity(nodeTopology={**old["nodeTopology"], "matchLabels": {}})
    assert message(same, old) == ""
    renamed = capacity(metadata={"name": "csisc-2", "namespace": "default"})
    assert "metadata.name: Invalid value: \"csisc-2\": field is immutable" in message(renamed, old)


def test_stored_invalid_label_values_may_stay_on_update():
    odd = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["not valid!"]}]}
    assert "nodeTopology.matchExpressions[0].values[0]: Invalid value: \"not valid!\"" in \
        message(capacity(nodeTopology=odd))
    assert message(capacity(nodeTopology=odd, capacity="2Mi"), capacity(nodeTopology=odd)) == ""


def test_table_columns_and_rows_as_upstream_printer():
    table = STRATEGY.table(NOW)
    assert [(c.name, c.type, c.format) for c in table.columns] == \
        [("Name", "string", "name"), ("StorageClassName", "string", ""), ("Capacity", "string", "")]
    assert table.row(capacity(capacity="1Gi")).cells == ["csisc-1", "fast", "1Gi"]
    assert csi_storage_capacity_row(capacity(capacity=None)).cells == ["csisc-1", "fast", "<unset>"]


def test_schema_and_strict_field_shape():
    info = next(s.info for s in all_strategies() if s.info.kind == "CSIStorageCapacity")
    assert schema_name(info) == "io.k8s.api.storage.v1.CSIStorageCapacity"
    definition = DEFINITIONS[definition_name(info)]
    assert set(definition.fields) == {"apiVersion", "kind", "metadata", "nodeTopology", "storageClassName",
                                      "capacity", "maximumVolumeSize"}
    assert definition.fields["nodeTopology"][0] == "meta.LabelSelector"
    assert definition.required == ("storageClassName",)
    body = capacity(spec={}, nodeTopology={"matchLabels": {"a": "b"}, "matchExpression": []})
    assert unknown_fields("CSIStorageCapacity", body) == ["nodeTopology.matchExpression", "spec"]
    assert unknown_fields("CSIStorageCapacity", capacity(maximumVolumeSize="1Gi")) == []
