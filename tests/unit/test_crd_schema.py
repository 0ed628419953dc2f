"""Structural schemas: validation of custom objects (kube-openapi's messages as apiextensions turns them into
field errors), ratcheting, pruning, defaulting, list types, and the rules a CRD's schema must follow."""
import pytest

from apiserver.crd.gofmt import go_float
from apiserver.crd.schema import apply_defaults, list_errors, prune, prune_nulls, schema_errors, structural_errors
from apiserver.crd.validate import validate

SCHEMA = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object", "required": ["color"],
            "properties": {
                "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                "color": {"type": "string", "enum": ["red", "green"]},
                "name": {"type": "string", "maxLength": 5, "pattern": "^[a-z]+$"},
                "short": {"type": "string", "minLength": 3},
                "ratio": {"type": "number", "multipleOf": 0.5},
                "size": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
                "few": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "limited": {"type": "object", "maxProperties": 1, "additionalProperties": {"type": "integer"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "when": {"type": "string", "format": "date-time"},
                "one": {"oneOf": [{"required": ["a"]}, {"required": ["b"]}], "type": "object",
                        "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
            },
        },
        "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}},
    },
}


def messages(obj, schema=SCHEMA, old=...):
    found = validate(obj, schema) if old is ... else validate(obj, schema, old=old)
    return [f"{e.field}: {e.message()}" for e in found]


@pytest.mark.parametrize("spec,expected", [
    ({"color": "red", "replicas": "two"},
     'spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"'),
    ({"color": "blue"}, 'spec.color: Unsupported value: "blue": supported values: "red", "green"'),
    ({}, "spec.color: Required value"),
    ({"color": "red", "replicas": -1},
     "spec.replicas: Invalid value: -1: spec.replicas in body should be greater than or equal to 0"),
    ({"color": "red", "replicas": 11},
     "spec.replicas: Invalid value: 11: spec.replicas in body should be less than or equal to 10"),
    ({"color": "red", "name": "abcdef"}, "spec.name: Too long: may not be more than 5 bytes"),
    ({"color": "red", "name": "AB"},
     "spec.name: Invalid value: \"AB\": spec.name in body should match '^[a-z]+$'"),
    ({"color": "red", "short": "ab"},
     'spec.short: Invalid value: "ab": spec.short in body should be at least 3 chars long'),
    ({"color": "red", "ratio": 0.3}, "spec.ratio: Invalid value: 0.3: spec.ratio in body should be a multiple of 0.5"),
    ({"color": "red", "size": [1]},
     'spec.size: Invalid value: "array": spec.size in body must be of type integer,string: "array"'),
    ({"color": "red", "tags": ["a", "b", "c"]}, "spec.tags: Too many: 3: must have at most 2 items"),
    ({"color": "red", "tags": ["a", 1]},
     'spec.tags[1]: Invalid value: "integer": spec.tags[1] in body must be of type string: "integer"'),
    ({"color": "red", "few": []}, "spec.few: Invalid value: 0: spec.few in body should have at least 1 items"),
    ({"color": "red", "labels": {"a": 1}},
     'spec.labels.a: Invalid value: "integer": spec.labels.a in body must be of type string: "integer"'),
    ({"color": "red", "limited": {"a": 1, "b": 2}}, "spec.limited: Too many: 2: must have at most 1 item"),
    ({"color": "red", "when": "yesterday"},
     'spec.when: Invalid value: "yesterday": spec.when in body must be of type date-time: "yesterday"'),
    ({"color": "red", "one": {}},
     '<nil>: Invalid value: "": "spec.one" must validate one and only one schema (oneOf). Found none valid'),
])
def test_value_validation_messages(spec, expected):
    assert expected in messages({"spec": spec})


def test_valid_objects_and_free_form_fields_pass():
    assert messages({"spec": {"color": "green", "size": "50%", "free": {"anything": [1, {"x": None}]},
                              "when": "2026-01-02T03:04:05Z", "ratio": 1.5, "one": {"a": "x"}}}) == []
    assert messages({"spec": {"color": "red", "size": 3, "replicas": 2.0}}) == []  # an integral float is an integer


def test_bool_is_not_an_integer_and_null_needs_nullable():
    assert messages({"spec": {"color": "red", "replicas": True}}) == [
        'spec.replicas: Invalid value: "boolean": spec.replicas in body must be of type integer: "boolean"']
    assert messages({"spec": {"color": "red", "name": None}}) == [
        'spec.name: Invalid value: "null": spec.name in body must be of type string: "null"']
    assert messages({"x": None}, {"type": "object", "properties": {"x": {"type": "string", "nullable": True}}}) == []


def test_ratcheting_keeps_unchanged_invalid_values():
    old = {"spec": {"color": "blue", "replicas": 1}}
    assert messages({"spec": {"color": "blue", "replicas": 2}}, old=old) == []
    assert messages({"spec": {"color": "pink", "replicas": 2}}, old=old) == [
        'spec.color: Unsupported value: "pink": supported values: "red", "green"']


def test_status_errors_carry_the_status_prefix():
    found = validate({"ready": "yes"}, SCHEMA["properties"]["status"], "status")
    assert [f"{e.field}: {e.message()}" for e in found] == [
        'status.ready: Invalid value: "string": ready in body must be of type boolean: "string"']


def test_prune_removes_unknown_fields_but_keeps_metadata_and_preserved_ones():
    obj = {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}},
           "spec": {"color": "red", "bogus": 1, "free": {"kept": True}, "tags": ["a"]}, "extra": {"b": 2}}
    assert prune(obj, SCHEMA) == ["extra", "spec.bogus"]
    assert obj == {"apiVersion": "x/v1", "kind": "K", "metadata": {"name": "a", "labels": {"x": "y"}},
                   "spec": {"color": "red", "free": {"kept": True}, "tags": ["a"]}}


def test_prune_inside_lists_and_embedded_resources():
    schema = {"type": "object", "properties": {"spec": {"type": "object", "properties": {
        "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
        "template": {"type": "object", "x-kubernetes-embedded-resource": True,
                     "properties": {"spec": {"type": "object"}}}}}}}
    obj = {"spec": {"items": [{"a": "1", "b": 2}], "template": {"apiVersion": "v1", "kind": "Pod",
                                                                 "metadata": {"name": "p"}, "spec": {}, "zz": 1}}}
    assert prune(obj, schema) == ["spec.items[0].b", "spec.template.zz"]
    assert obj["spec"]["template"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}


def test_defaults_fill_missing_and_null_fields():
    obj = {"spec": {"color": "red"}}
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["replicas"] == 1
    obj = {"spec": {"color": "red", "replicas": None}}
    apply_defaults(obj, SCHEMA)
    assert obj["spec"]["replicas"] == 1
    nested = {"type": "object", "properties": {"spec": {"type": "object", "default": {}, "properties": {
        "mode": {"type": "string", "default": "auto"}}}}}
    obj = {}
    apply_defaults(obj, nested)
    assert obj == {"spec": {"mode": "auto"}}


def test_nulls_of_non_nullable_fields_without_defaults_are_dropped():
    obj = {"spec": {"color": "red", "name": None}}
    prune_nulls(obj, SCHEMA)
    assert obj == {"spec": {"color": "red"}}


def test_list_type_set_and_map_duplicates():
    schema = {"type": "object", "properties": {
        "s": {"type": "array", "x-kubernetes-list-type": "set", "items": {"type": "string"}},
        "m": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
              "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}
    found = list_errors({"s": ["a", "b", "a"], "m": [{"name": "x"}, {"name": "x"}]}, schema)
    assert [f"{e.field}: {e.message()}" for e in found] == [
        's[2]: Duplicate value: "a"', 'm[1]: Duplicate value: {"name":"x"}']


@pytest.mark.parametrize("schema,expected", [
    ({"type": "object", "properties": {"spec": {"properties": {"a": {"type": "string"}}}}},
     "p.properties[spec].type: Required value: must not be empty for specified object fields"),
    ({"type": "object", "properties": {"l": {"type": "array"}}},
     "p.properties[l].items: Required value: must be specified"),
    ({"type": "string"}, 'p.type: Invalid value: "string": must be object at the root'),
    ({"properties": {}}, "p.type: Required value: must not be empty at the root"),
    ({"type": "object", "additionalProperties": {"type": "string"}},
     "p.additionalProperties: Forbidden: must not be used at the root"),
    ({"type": "object", "properties": {"metadata": {"type": "object", "properties": {"labels": {"type": "object"}}}}},
     "p.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is "
     "implicitly specified"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"type": "string"}]},
     "p.anyOf[0].type: Forbidden: must be empty to be structural"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "anyOf": [{"properties": {"b": {}}}]},
     "p.properties[b]: Required value: because it is defined in p.anyOf[0].properties[b]"),
])
def test_structural_schema_rules(schema, expected):
    assert expected in [f"{e.field}: {e.message()}" for e in structural_errors(schema, "p")]


@pytest.mark.parametrize("schema,expected", [
    ({"type": "object", "properties": {"a": {"type": "array", "uniqueItems": True, "items": {"type": "string"}}}},
     "p.properties[a].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity "
     "becomes quadratic"),
    ({"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "string"}},
                                              "additionalProperties": {"type": "string"}}}},
     "p.properties[a].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
    ({"type": "object", "properties": {"a": {"type": "string", "default": 5}}},
     # upstream validates the default at the root of a validator: the name in the message is empty
     'p.properties[a].default: Invalid value: "integer":  in body must be of type string: "integer"'),
    ({"type": "object", "properties": {"metadata": {"type": "object", "default": {}}}},
     "p.properties[metadata].default: Forbidden: must not be set in top-level metadata"),
    ({"type": "object", "properties": {"a": {"type": "object", "default": {"x": 1}}}},
     'p.properties[a].default: Invalid value: {"x":1}: must not have unknown fields'),
    ({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
                                             "items": {"type": "object"}}}},
     "p.properties[a].x-kubernetes-list-map-keys: Required value: must not be empty if x-kubernetes-list-type is map"),
    ({"type": "object", "properties": {"a": {"type": "array", "x-kubernetes-list-type": "map",
                                             "x-kubernetes-list-map-keys": ["k"],
                                             "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}},
     "p.properties[a].items.properties[k].default: Required value: this property is in x-kubernetes-list-map-keys, "
     "so it must have a default or be a required property"),
    ({"type": "object", "properties": {"a": {"type": "null"}}},
     "p.properties[a].type: Forbidden: type cannot be set to null, use nullable as an alternative"),
    ({"type": "object", "properties": {"a": {"$ref": "#/x"}}}, "p.properties[a].$ref: Forbidden: $ref is not supported"),
])
def test_crd_schema_rules(schema, expected):
    assert expected in [f"{e.field}: {e.message()}" for e in schema_errors(schema, False, "p")]


def test_status_subresource_restricts_the_root():
    schema = {"type": "object", "properties": {}, "additionalProperties": False}
    found = [f"{e.field}: {e.message()}" for e in schema_errors({"type": "array"}, True, "p")]
    assert 'p.type: Invalid value: "array": only "object" is allowed as the type at the root of the schema if the ' \
           'status subresource is enabled' in found
    assert any("fields are allowed at the root of the schema if the status subresource is enabled" in m
               for m in [f"{e.field}: {e.message()}" for e in schema_errors({**schema, "nullable": True}, True, "p")])


@pytest.mark.parametrize("value,text", [(1.5, "1.5"), (1e6, "1e+06"), (100000.0, "100000"), (0.0001, "0.0001"),
                                        (1e-5, "1e-05"), (-2.0, "-2")])
def test_go_float_formatting(value, text):
    assert go_float(value) == text
