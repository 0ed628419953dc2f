"""The CustomResourceDefinition object: defaulting, validation (upstream's messages and field paths, the bounds
on what one CRD may make the server hold), accepted names and conflicts."""
import copy

from apiserver.crd import definition
from apiserver.crd.names import accept_names

SCHEMA = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}}


def crd(**spec_changes):
    obj = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "kind": "Widget"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": copy.deepcopy(SCHEMA)}]},
           "status": {"storedVersions": ["v1"]}}
    obj["spec"].update(spec_changes)
    definition.default_crd(obj)
    return obj


def messages(obj, old=None):
    found = definition.validate_crd(obj) if old is None else definition.validate_crd_update(obj, old)
    return [f"{e.field}: {e.message()}" for e in found]


def test_defaults_and_a_valid_crd():
    obj = crd()
    assert obj["spec"]["names"]["singular"] == "widget" and obj["spec"]["names"]["listKind"] == "WidgetList"
    assert obj["spec"]["conversion"] == {"strategy": "None"}
    assert messages(obj) == []


def test_name_group_scope_and_storage_rules():
    obj = crd(group="example")
    obj["metadata"]["name"] = "widgets.example"
    assert 'spec.group: Invalid value: "example": should be a domain with at least one dot' in messages(obj)
    obj = crd()
    obj["metadata"]["name"] = "other.example.com"
    assert 'metadata.name: Invalid value: "other.example.com": must be spec.names.plural+"."+spec.group' in \
        messages(obj)
    obj = crd(scope="Everywhere")
    assert 'spec.scope: Unsupported value: "Everywhere": supported values: "Cluster", "Namespaced"' in messages(obj)
    obj = crd()
    obj["spec"]["versions"].append({"name": "v2", "served": True, "storage": True, "schema": SCHEMA})
    assert any(m.startswith("spec.versions: Invalid value:") and m.endswith(
        "must have exactly one version marked as storage version") for m in messages(obj))


def test_shared_schema_errors_are_reported_at_spec_validation_per_version_ones_at_the_version():
    bad = {"openAPIV3Schema": {"type": "object", "properties": {"spec": {"properties": {}}}}}
    obj = crd()
    obj["spec"]["versions"][0]["schema"] = bad
    assert "spec.validation.openAPIV3Schema.properties[spec].type: Required value: must not be empty for specified " \
           "object fields" in messages(obj)
    obj["spec"]["versions"].append({"name": "v2", "served": True, "storage": False, "schema": SCHEMA})
    assert "spec.versions[0].schema.openAPIV3Schema.properties[spec].type: Required value: must not be empty for " \
           "specified object fields" in messages(obj)


def test_missing_schema_names_and_columns():
    obj = crd()
    del obj["spec"]["versions"][0]["schema"]
    obj["spec"]["versions"][0]["additionalPrinterColumns"] = [{"name": "X", "type": "text", "jsonPath": "spec.x"}]
    found = messages(obj)
    assert "spec.versions[0].schema.openAPIV3Schema: Required value" in found
    assert 'spec.additionalPrinterColumns[0].type: Invalid value: "text": must be one of ' \
           'boolean,date,integer,number,string' in found
    assert 'spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.x": must be a simple json path starting ' \
           'with .' in found
    obj = crd(names={"plural": "Widgets", "kind": "Widget", "singular": "widget", "listKind": "Widget"})
    found = messages(obj)
    assert any(m.startswith('spec.names.plural: Invalid value: "Widgets": a DNS-1035 label') for m in found)
    assert 'spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same' in found


def test_scale_paths_and_immutable_fields():
    obj = crd()
    obj["spec"]["versions"][0]["subresources"] = {"scale": {"specReplicasPath": ".status.r",
                                                             "statusReplicasPath": ".status.s"}}
    assert 'spec.subresources.scale.specReplicasPath: Invalid value: ".status.r": should be a json path under .spec' \
        in messages(obj)
    old = crd()
    old["status"]["conditions"] = [{"type": "Established", "status": "True"}]
    new = crd(scope="Cluster")
    found = messages(new, old)
    assert 'spec.scope: Invalid value: "Cluster": field is immutable' in found


def test_protected_groups_need_approval():
    obj = crd(group="example.k8s.io")
    obj["metadata"]["name"] = "widgets.example.k8s.io"
    assert 'metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval ' \
           'annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111' \
           in messages(obj)
    obj["metadata"]["annotations"] = {"api-approved.kubernetes.io": "unapproved, testing"}
    assert messages(obj) == []


def test_bounds_on_versions_schema_depth_and_size():
    obj = crd()
    obj["spec"]["versions"] = [{"name": f"v{i}", "served": True, "storage": i == 1, "schema": SCHEMA}
                               for i in range(1, definition.MAX_VERSIONS + 2)]
    assert f"spec.versions: Too many: {definition.MAX_VERSIONS + 1}: must have at most {definition.MAX_VERSIONS} " \
           "items" in messages(obj)
    deep = {"type": "string"}
    for _ in range(definition.MAX_SCHEMA_DEPTH + 1):
        deep = {"type": "object", "properties": {"a": deep}}
    obj = crd()
    obj["spec"]["versions"][0]["schema"] = {"openAPIV3Schema": deep}
    assert f"spec.validation.openAPIV3Schema: Forbidden: must not nest more than {definition.MAX_SCHEMA_DEPTH} " \
           "levels of properties, items, additionalProperties or value validations" in messages(obj)
    obj = crd()
    obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] = "x" * (definition.MAX_SPEC_BYTES + 1)
    assert any(m.startswith(f"spec: Forbidden: must not be larger than {definition.MAX_SPEC_BYTES} bytes")
               for m in messages(obj))


def test_names_are_accepted_unless_another_crd_of_the_group_holds_them():
    first = crd(names={"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList",
                       "shortNames": ["wd"]})
    names, accepted, established = accept_names(first, [])
    assert names["shortNames"] == ["wd"] and accepted["reason"] == "NoConflicts"
    assert established == {"type": "Established", "status": "False", "reason": "Installing",
                           "message": "the initial names have been accepted"}
    first["status"]["acceptedNames"] = names
    second = crd(names={"plural": "gizmos", "singular": "gizmo", "kind": "Widget", "listKind": "GizmoList",
                        "shortNames": ["wd"]})
    second["metadata"]["name"] = "gizmos.example.com"
    names, accepted, _ = accept_names(second, [first])
    assert accepted["status"] == "False" and accepted["reason"] == "KindConflict"
    assert accepted["message"] == '"Widget" is already in use'
    assert "kind" not in names and "shortNames" not in names and names["plural"] == "gizmos"


def test_kube_aware_version_order():
    assert sorted(["v1alpha1", "v1", "v2beta1", "v1beta2", "v2", "foo"], key=definition.kube_version_key) == \
        ["v2", "v1", "v2beta1", "v1beta2", "v1alpha1", "foo"]
