"""Structural schemas: the rules a CRD's openAPIV3Schema must follow (upstream's ValidateStructural, the
OpenAPI schema checks of CRD validation, defaults validation, list/map type rules; same messages and field
paths), and what a structural schema does to custom objects: pruning unknown fields, applying defaults,
dropping nulls, checking list-type sets and maps and embedded resources.

Schemas are the JSONSchemaProps JSON as stored in the CRD (dicts). The structural part of a schema is the
root, `properties`, `items` and `additionalProperties` (when a schema); `allOf`/`anyOf`/`oneOf`/`not` hold
value validations only.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Callable

from apiserver import errors
from apiserver.crd.gofmt import bad_value
from apiserver.crd.validate import compile_pattern, json_equal, validate
from apiserver.errors import FieldError
from apiserver.validation import qualified_name

Schema = dict[str, Any]
ROOT, ITEM, FIELD = "root", "item", "field"
OPENAPI_V3_TYPES = ("array", "boolean", "integer", "number", "object", "string")
META_FIELDS = ("apiVersion", "kind", "metadata")
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
# The JSONSchemaProps fields upstream allows at the root when the status subresource is enabled (as JSON keys).
ROOT_FIELDS_WITH_STATUS = ("description", "type", "format", "title", "maximum", "exclusiveMaximum", "minimum",
                           "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
                           "uniqueItems", "multipleOf", "required", "items", "properties", "externalDocs", "example",
                           "x-kubernetes-preserve-unknown-fields", "x-kubernetes-validations")
_GO_ROOT_FIELDS = ("Description", "Type", "Format", "Title", "Maximum", "ExclusiveMaximum", "Minimum",
                   "ExclusiveMinimum", "MaxLength", "MinLength", "Pattern", "MaxItems", "MinItems", "UniqueItems",
                   "MultipleOf", "Required", "Items", "Properties", "ExternalDocs", "Example",
                   "XPreserveUnknownFields", "XValidations")


def _key(path: str, name: str) -> str:
    return f"{path}[{name}]"


def _is_zero(value: Any) -> bool:
    return value in (None, False, 0, "", [], {})


def props(schema: Schema) -> dict[str, Schema]:
    value = schema.get("properties")
    return {k: v for k, v in value.items() if isinstance(v, dict)} if isinstance(value, dict) else {}


def additional_schema(schema: Schema) -> Schema | None:
    value = schema.get("additionalProperties")
    return value if isinstance(value, dict) else None


def has_additional(schema: Schema) -> bool:
    return "additionalProperties" in schema and schema["additionalProperties"] is not None


def items_schema(schema: Schema) -> Schema | None:
    value = schema.get("items")
    return value if isinstance(value, dict) else None


def field_schema(schema: Schema | None, key: str) -> Schema | None:
    """The schema of a map key: its property, else the additionalProperties schema."""
    if schema is None:
        return None
    found = props(schema).get(key)
    return found if found is not None else additional_schema(schema)


# --- structural invariants (ValidateStructural) ----------------------------------------------------------
def _nested_errors(v: Schema, skip_any_of: bool, skip_all_of_any_of: bool, path: str) -> list[FieldError]:
    found = _value_validation_errors(v, skip_any_of, skip_all_of_any_of, path)
    if isinstance(v.get("items"), dict):
        found += _nested_errors(v["items"], False, False, f"{path}.items")
    for key, sub in props(v).items():
        found += _nested_errors(sub, False, False, _key(f"{path}.properties", key))
    if v.get("type"):
        found.append(errors.forbidden(f"{path}.type", "must be empty to be structural"))
    if v.get("additionalProperties") not in (None, False):
        found.append(errors.forbidden(f"{path}.additionalProperties", "must be undefined to be structural"))
    if "default" in v and v["default"] is not None:
        found.append(errors.forbidden(f"{path}.default", "must be undefined to be structural"))
    if v.get("title"):
        found.append(errors.forbidden(f"{path}.title", "must be empty to be structural"))
    if v.get("description"):
        found.append(errors.forbidden(f"{path}.description", "must be empty to be structural"))
    if v.get("nullable"):
        found.append(errors.forbidden(f"{path}.nullable", "must be false to be structural"))
    for ext in ("x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                "x-kubernetes-int-or-string"):
        if v.get(ext):
            found.append(errors.forbidden(f"{path}.{ext}", "must be false to be structural"))
    if v.get("x-kubernetes-list-map-keys"):
        found.append(errors.forbidden(f"{path}.x-kubernetes-list-map-keys", "must be empty to be structural"))
    for ext in ("x-kubernetes-list-type", "x-kubernetes-map-type"):
        if v.get(ext) is not None:
            found.append(errors.forbidden(f"{path}.{ext}", "must be undefined to be structural"))
    if v.get("x-kubernetes-validations"):
        found.append(errors.forbidden(f"{path}.x-kubernetes-validations", "must be empty to be structural"))
    if "metadata" in props(v):
        found.append(errors.forbidden(_key(f"{path}.properties", "metadata"),
                                      "must not be specified in a nested context"))
    return found


def _clauses(schema: Schema, key: str) -> list[Schema]:
    value = schema.get(key)
    return [c if isinstance(c, dict) else {} for c in value] if isinstance(value, list) else []


def _is_int_or_string_any_of(schema: Schema) -> bool:
    return _clauses(schema, "anyOf") == _INT_OR_STRING_ANY_OF


def _value_validation_errors(v: Schema, skip_any_of: bool, skip_first_all_of_any_of: bool,
                             path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not skip_any_of:
        for i, clause in enumerate(_clauses(v, "anyOf")):
            found += _nested_errors(clause, False, False, f"{path}.anyOf[{i}]")
    for i, clause in enumerate(_clauses(v, "allOf")):
        found += _nested_errors(clause, skip_first_all_of_any_of and i == 0, False, f"{path}.allOf[{i}]")
    for i, clause in enumerate(_clauses(v, "oneOf")):
        found += _nested_errors(clause, False, False, f"{path}.oneOf[{i}]")
    if isinstance(v.get("not"), dict):
        found += _nested_errors(v["not"], False, False, f"{path}.not")
    pattern = v.get("pattern")
    if isinstance(pattern, str) and pattern and compile_pattern(pattern) is None:
        found.append(errors.invalid(f"{path}.pattern", pattern,
                                    f"must be a valid regular expression, but isn't: error parsing regexp: {pattern}"))
    return found


def _metadata_errors(s: Schema, check_metadata: bool, level: str, path: str) -> list[FieldError]:
    found = []
    if check_metadata and s.get("type") != "object":
        found.append(errors.invalid(f"{path}.type", s.get("type", ""), "must be object"))
    if level == ROOT:
        rest = {k: v for k, v in s.items() if k not in ("type", "default") and not _is_zero(v)}
        properties = props(s)
        if properties and set(properties) <= {"name", "generateName"}:
            rest.pop("properties", None)
        if rest:
            found.append(errors.forbidden(path, "must not specify anything other than name and generateName, but "
                                                "metadata is implicitly specified"))
    return found


def _invariant_errors(s: Schema, level: str, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    kind = s.get("type") or ""
    if kind == "array" and s.get("items") is None:
        found.append(errors.required(f"{path}.items", "must be specified"))
    if isinstance(s.get("items"), dict):
        found += _invariant_errors(s["items"], ITEM, f"{path}.items")
    for key, sub in props(s).items():
        found += _invariant_errors(sub, FIELD, _key(f"{path}.properties", key))
    if has_additional(s):
        if level == ROOT:
            found.append(errors.forbidden(f"{path}.additionalProperties", "must not be used at the root"))
        if additional_schema(s) is not None:
            found += _invariant_errors(s["additionalProperties"], FIELD, f"{path}.additionalProperties")
    int_or_string = bool(s.get("x-kubernetes-int-or-string"))
    preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    if int_or_string and preserve:
        found.append(errors.invalid(f"{path}.x-kubernetes-preserve-unknown-fields", True,
                                    "must be false if x-kubernetes-int-or-string is true"))
    if int_or_string and embedded:
        found.append(errors.invalid(f"{path}.x-kubernetes-embedded-resource", True,
                                    "must be false if x-kubernetes-int-or-string is true"))
    all_of = _clauses(s, "allOf")
    found += _value_validation_errors(s, _is_int_or_string_any_of(s),
                                      bool(all_of) and _clauses(all_of[0], "anyOf") == _INT_OR_STRING_ANY_OF, path)
    check_metadata = level == ROOT or embedded
    if embedded and kind != "object":
        if not kind:
            found.append(errors.required(f"{path}.type", "must be object if x-kubernetes-embedded-resource is true"))
        else:
            found.append(errors.invalid(f"{path}.type", kind, "must be object if x-kubernetes-embedded-resource is "
                                                              "true"))
    elif not kind and not int_or_string and not preserve:
        detail = {ROOT: "must not be empty at the root", ITEM: "must not be empty for specified array items",
                  FIELD: "must not be empty for specified object fields"}[level]
        found.append(errors.required(f"{path}.type", detail))
    if embedded and has_additional(s):
        found.append(errors.forbidden(f"{path}.additionalProperties", "must not be used if "
                                                                      "x-kubernetes-embedded-resource is set"))
    if level == ROOT and kind and kind != "object":
        found.append(errors.invalid(f"{path}.type", kind, "must be object at the root"))
    properties = props(s)
    for meta_key in ("kind", "apiVersion"):
        if meta_key in properties and check_metadata and properties[meta_key].get("type") != "string":
            found.append(errors.invalid(f"{_key(f'{path}.properties', meta_key)}.type",
                                        properties[meta_key].get("type", ""), "must be string"))
    if "metadata" in properties:
        found += _metadata_errors(properties["metadata"], check_metadata, level,
                                  _key(f"{path}.properties", "metadata"))
    if embedded and not preserve and not properties:
        found.append(errors.required(f"{path}.properties", "must not be empty if x-kubernetes-embedded-resource is "
                                                           "true without x-kubernetes-preserve-unknown-fields"))
    return found


def _completeness_errors(v: Schema, s: Schema | None, s_path: str, v_path: str) -> list[FieldError]:
    """Value validations (allOf/anyOf/oneOf/not) may only name properties and items the structural part has."""
    found: list[FieldError] = []
    if isinstance(v.get("not"), dict):
        found += _nested_completeness(v["not"], s, s_path, f"{v_path}.not")
    for key in ("allOf", "anyOf", "oneOf"):
        for i, clause in enumerate(_clauses(v, key)):
            found += _nested_completeness(clause, s, s_path, f"{v_path}.{key}[{i}]")
    return found


def _nested_completeness(v: Schema, s: Schema | None, s_path: str, v_path: str) -> list[FieldError]:
    if s is None:
        return [errors.required(s_path, f"because it is defined in {v_path}")]
    found = _completeness_errors(v, s, s_path, v_path)
    if isinstance(v.get("items"), dict):
        found += _nested_completeness(v["items"], items_schema(s), f"{s_path}.items", f"{v_path}.items")
    for key, sub in props(v).items():
        structural = props(s).get(key)
        if structural is None:
            found.append(errors.required(_key(f"{s_path}.properties", key),
                                         f"because it is defined in {_key(f'{v_path}.properties', key)}"))
        else:
            found += _nested_completeness(sub, structural, _key(f"{s_path}.properties", key),
                                          _key(f"{v_path}.properties", key))
    return found


def structural_errors(schema: Schema, path: str) -> list[FieldError]:
    """ValidateStructural: invariants and completeness, sorted by their text as upstream."""
    found = _invariant_errors(schema, ROOT, path) + _completeness_errors(schema, schema, path, path)
    return sorted(found, key=lambda e: f"{e.field}: {e.message()}")


# --- defaults --------------------------------------------------------------------------------------------
def default_errors(schema: Schema, path: str) -> list[FieldError]:
    """Every default must be pruned already (no unknown fields) and valid against its own schema."""
    return _defaults(schema, path, is_root=True, inside_meta=False)


def _defaults(s: Schema, path: str, is_root: bool, inside_meta: bool) -> list[FieldError]:
    found: list[FieldError] = []
    embedded = is_root or bool(s.get("x-kubernetes-embedded-resource"))
    if "default" in s and s["default"] is not None and not inside_meta:
        value = s["default"]
        pruned = copy.deepcopy(value)
        prune(pruned, s, is_resource_root=bool(s.get("x-kubernetes-embedded-resource")))
        problems = []
        if not json_equal(pruned, value):
            problems.append(errors.invalid(f"{path}.default", bad_value(value), "must not have unknown fields"))
        if not problems:
            problems = validate(value, s, f"{path}.default")
        found += problems
    if isinstance(s.get("items"), dict):
        found += _defaults(s["items"], f"{path}.items", False, inside_meta)
    for key, sub in props(s).items():
        found += _defaults(sub, _key(f"{path}.properties", key), False,
                           inside_meta or (embedded and key in META_FIELDS))
    return found


# --- the OpenAPI checks of CRD validation ----------------------------------------------------------------
class _Rules:
    """specStandardValidatorV3's context while walking: whether defaults are allowed, inside resource meta."""

    def __init__(self, allow_defaults: bool = True, reason: str = "", inside_meta: bool = False):
        self.allow_defaults, self.reason, self.inside_meta = allow_defaults, reason, inside_meta

    def forbid_defaults(self, reason: str) -> "_Rules":
        return _Rules(False, reason, self.inside_meta)

    def within_meta(self) -> "_Rules":
        return _Rules(self.allow_defaults, self.reason, True)


def _standard_errors(s: Schema, path: str, rules: _Rules) -> list[FieldError]:
    found: list[FieldError] = []
    kind = s.get("type")
    if isinstance(kind, str) and kind and kind not in OPENAPI_V3_TYPES and kind != "null":
        found.append(errors.not_supported(f"{path}.type", kind, list(OPENAPI_V3_TYPES)))
    if "default" in s and s["default"] is not None and not rules.allow_defaults:
        detail = "must not be set" + (f" {rules.reason}" if rules.reason else "")
        found.append(errors.forbidden(f"{path}.default", detail))
    if s.get("id"):
        found.append(errors.forbidden(f"{path}.id", "id is not supported"))
    for key, what in (("additionalItems", "additionalItems"), ("patternProperties", "patternProperties"),
                      ("definitions", "definitions"), ("dependencies", "dependencies"), ("$ref", "$ref")):
        if s.get(key) not in (None, {}, ""):
            found.append(errors.forbidden(f"{path}.{key}", f"{what} is not supported"))
    if kind == "null":
        found.append(errors.forbidden(f"{path}.type", "type cannot be set to null, use nullable as an alternative"))
    if isinstance(s.get("items"), list) and s["items"]:
        found.append(errors.forbidden(f"{path}.items", "items must be a schema object and not an array"))
    if rules.inside_meta and s.get("x-kubernetes-embedded-resource"):
        found.append(errors.forbidden(f"{path}.x-kubernetes-embedded-resource", "must not be used inside of "
                                                                                "resource meta"))
    return found


def _ptr(value: Any) -> Any:
    return "null" if value is None else value


def openapi_errors(s: Schema, path: str, rules: _Rules | None = None, is_root: bool = True) -> list[FieldError]:
    """ValidateCustomResourceDefinitionOpenAPISchema (without CEL compilation)."""
    rules = rules or _Rules()
    found = _standard_errors(s, path, rules)
    if s.get("uniqueItems") is True:
        found.append(errors.forbidden(f"{path}.uniqueItems", "uniqueItems cannot be set to true since the runtime "
                                                             "complexity becomes quadratic"))
    properties = props(s)
    if has_additional(s):
        if properties and (s["additionalProperties"] is not True):
            found.append(errors.forbidden(f"{path}.additionalProperties",
                                          "additionalProperties and properties are mutual exclusive"))
        if additional_schema(s) is not None:
            sub_rules = rules.forbid_defaults("inside additionalProperties applying to object metadata") \
                if rules.inside_meta else rules
            found += openapi_errors(s["additionalProperties"], f"{path}.additionalProperties", sub_rules, False)
    embedded = bool(s.get("x-kubernetes-embedded-resource"))
    for key, sub in properties.items():
        sub_rules = rules
        if (is_root or embedded) and key in META_FIELDS:
            sub_rules = sub_rules.within_meta()
            if is_root:
                sub_rules = sub_rules.forbid_defaults(f"in top-level {key}")
        found += openapi_errors(sub, _key(f"{path}.properties", key), sub_rules, False)
    if isinstance(s.get("not"), dict):
        found += openapi_errors(s["not"], f"{path}.not", rules, False)
    for key in ("allOf", "oneOf", "anyOf"):
        for i, clause in enumerate(_clauses(s, key)):
            found += openapi_errors(clause, f"{path}.{key}[{i}]", rules, False)
    items = s.get("items")
    if isinstance(items, dict):
        found += openapi_errors(items, f"{path}.items", rules, False)
    elif isinstance(items, list):
        for i, clause in enumerate(items):
            if isinstance(clause, dict):
                found += openapi_errors(clause, f"{path}.items[{i}]", rules, False)
    if s.get("x-kubernetes-preserve-unknown-fields") is False:
        found.append(errors.invalid(f"{path}.x-kubernetes-preserve-unknown-fields", False, "must be true or "
                                                                                            "undefined"))
    kind = s.get("type") or ""
    map_type = s.get("x-kubernetes-map-type")
    if map_type is not None and kind != "object":
        if not kind:
            found.append(errors.required(f"{path}.type", "must be object if x-kubernetes-map-type is specified"))
        else:
            found.append(errors.invalid(f"{path}.type", kind, "must be object if x-kubernetes-map-type is specified"))
    if map_type is not None and map_type not in ("atomic", "granular"):
        found.append(errors.not_supported(f"{path}.x-kubernetes-map-type", map_type, ["atomic", "granular"]))
    list_type = s.get("x-kubernetes-list-type")
    item = items_schema(s)
    if list_type is not None and kind != "array":
        if not kind:
            found.append(errors.required(f"{path}.type", "must be array if x-kubernetes-list-type is specified"))
        else:
            found.append(errors.invalid(f"{path}.type", kind, "must be array if x-kubernetes-list-type is specified"))
    elif list_type == "set" and item is not None:
        if item.get("type") == "array" and item.get("x-kubernetes-list-type") not in (None, "atomic"):
            found.append(errors.invalid(f"{path}.items.x-kubernetes-list-type", item.get("x-kubernetes-list-type"),
                                        "must be atomic as item of a list with x-kubernetes-list-type=set"))
        elif item.get("type") == "object" and item.get("x-kubernetes-map-type") != "atomic":
            found.append(errors.invalid(f"{path}.items.x-kubernetes-map-type",
                                        _ptr(item.get("x-kubernetes-list-type")),
                                        "must be atomic as item of a list with x-kubernetes-list-type=set"))
    if list_type is not None and list_type not in ("atomic", "set", "map"):
        found.append(errors.not_supported(f"{path}.x-kubernetes-list-type", list_type, ["atomic", "set", "map"]))
    map_keys = s.get("x-kubernetes-list-map-keys") or []
    if map_keys:
        if list_type is None:
            found.append(errors.required(f"{path}.x-kubernetes-list-type", "must be map if "
                                                                           "x-kubernetes-list-map-keys is non-empty"))
        elif list_type != "map":
            found.append(errors.invalid(f"{path}.x-kubernetes-list-type", list_type, "must be map if "
                                                                                     "x-kubernetes-list-map-keys is "
                                                                                     "non-empty"))
    if list_type == "map":
        if not map_keys:
            found.append(errors.required(f"{path}.x-kubernetes-list-map-keys", "must not be empty if "
                                                                               "x-kubernetes-list-type is map"))
        if s.get("items") is None:
            found.append(errors.required(f"{path}.items", "must have a schema if x-kubernetes-list-type is map"))
        elif item is None:
            found.append(errors.invalid(f"{path}.items", bad_value(s["items"]), "must only have a single schema if "
                                                                               "x-kubernetes-list-type is map"))
        elif item.get("type") != "object":
            found.append(errors.invalid(f"{path}.items.type", item.get("type", ""), "must be object if parent "
                                                                                    "array's x-kubernetes-list-type "
                                                                                    "is map"))
        else:
            seen: set = set()
            item_props = props(item)
            for key in map_keys:
                if key in item_props:
                    if item_props[key].get("type") in ("array", "object"):
                        found.append(errors.invalid(f"{_key(f'{path}.items.properties', key)}.type", item.get("type"),
                                                    "must be a scalar type if parent array's "
                                                    "x-kubernetes-list-type is map"))
                else:
                    found.append(errors.invalid(f"{path}.x-kubernetes-list-map-keys", map_keys,
                                                "entries must all be names of item properties"))
                if key in seen:
                    found.append(errors.invalid(f"{path}.x-kubernetes-list-map-keys", map_keys,
                                                "must not contain duplicate entries"))
                seen.add(key)
    if list_type in ("set", "map") and item is not None:
        if item.get("nullable"):
            found.append(errors.forbidden(f"{path}.items.nullable", f"cannot be nullable when x-kubernetes-list-type "
                                                                    f"is {list_type}"))
        if list_type == "map":
            required = set(item.get("required") or [])
            for key in map_keys:
                key_schema = props(item).get(key)
                if key_schema is None:
                    continue
                if key not in required and key_schema.get("default") is None:
                    found.append(errors.required(f"{_key(f'{path}.items.properties', key)}.default",
                                                 "this property is in x-kubernetes-list-map-keys, so it must have a "
                                                 "default or be a required property"))
                if key_schema.get("nullable"):
                    found.append(errors.forbidden(f"{_key(f'{path}.items.properties', key)}.nullable",
                                                  "this property is in x-kubernetes-list-map-keys, so it cannot be "
                                                  "nullable"))
    for i, rule in enumerate(s.get("x-kubernetes-validations") or []):
        if not isinstance(rule, dict):
            continue
        where = f"{path}.x-kubernetes-validations[{i}]"
        text, message = str(rule.get("rule") or "").strip(), str(rule.get("message") or "")
        if not text:
            found.append(errors.required(f"{where}.rule", "rule is not specified"))
        elif message and not message.strip():
            found.append(errors.invalid(f"{where}.message", message, "must be non-empty if specified"))
        elif "\n" in message.strip() or "\r" in message.strip():
            found.append(errors.invalid(f"{where}.message", message, "must not contain line breaks"))
        elif ("\n" in text or "\r" in text) and not message.strip():
            found.append(errors.required(f"{where}.message", "message must be specified if rule contains line "
                                                             "breaks"))
        reason = rule.get("reason")
        supported = ["FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"]
        if reason is not None and reason not in supported:
            found.append(errors.not_supported(f"{where}.reason", reason, supported))
    return found


def root_errors(schema: Schema, status_enabled: bool, path: str) -> list[FieldError]:
    """The root of a schema: with the status subresource only some fields; never nullable."""
    found: list[FieldError] = []
    if status_enabled:
        for key, go_name in [(k, g) for k, g in zip(ROOT_FIELDS_WITH_STATUS, _GO_ROOT_FIELDS)] + \
                [(k, None) for k in schema if k not in ROOT_FIELDS_WITH_STATUS]:
            if key not in schema or _is_zero(schema[key]):
                continue
            if key == "type":
                if schema["type"] != "object":
                    found.append(errors.invalid(f"{path}.type", schema["type"], 'only "object" is allowed as the '
                                                                                'type at the root of the schema if '
                                                                                'the status subresource is enabled'))
                    break
                continue
            if go_name is None:
                allowed = "[" + " ".join(_GO_ROOT_FIELDS) + "]"
                found.append(errors.invalid(path, bad_value(schema), f"only {allowed} fields are allowed at the root "
                                                                     f"of the schema if the status subresource is "
                                                                     f"enabled"))
                break
    if schema.get("nullable"):
        found.append(errors.forbidden(f"{path}.nullable", "nullable cannot be true at the root"))
    return found


def schema_errors(schema: Schema, status_enabled: bool, path: str) -> list[FieldError]:
    """Everything a CRD version's openAPIV3Schema (at `path`) must satisfy, as upstream's
    validateCustomResourceDefinitionValidation orders it."""
    found = root_errors(schema, status_enabled, path)
    structural = structural_errors(schema, path)
    if structural:
        found += structural
    else:
        found += default_errors(schema, path)
    found += openapi_errors(schema, path)
    return found


def schema_has(schema: Any, predicate: Callable[[Schema], bool]) -> bool:
    """Whether any node of the schema (structural part and value validations) satisfies `predicate`."""
    pending = [schema]
    while pending:
        node = pending.pop()
        if not isinstance(node, dict):
            continue
        if predicate(node):
            return True
        pending += list(props(node).values())
        for key in ("additionalProperties", "items", "not"):
            if isinstance(node.get(key), dict):
                pending.append(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            pending += _clauses(node, key)
    return False


def depth(schema: Any) -> int:
    """Nesting of the structural part (properties / items / additionalProperties levels)."""
    deepest, pending = 0, [(schema, 1)]
    while pending:
        node, level = pending.pop()
        if not isinstance(node, dict):
            continue
        deepest = max(deepest, level)
        children = list(props(node).values())
        for key in ("additionalProperties", "items", "not"):
            if isinstance(node.get(key), dict):
                children.append(node[key])
        for key in ("allOf", "anyOf", "oneOf"):
            children += _clauses(node, key)
        pending += [(child, level + 1) for child in children]
    return deepest


# --- what a structural schema does to objects ------------------------------------------------------------
def prune(obj: Any, schema: Schema | None, is_resource_root: bool = True) -> list[str]:
    """Remove the fields the schema does not specify (x-kubernetes-preserve-unknown-fields keeps them; the
    apiVersion/kind/metadata of resources stay). Returns the removed paths (`spec.foo`, `items[0].bar`)."""
    if is_resource_root:
        schema = dict(schema or {})
        schema["x-kubernetes-embedded-resource"] = True
    removed: list[str] = []
    _prune(obj, schema, "", removed)
    return sorted(removed)


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _prune(x: Any, s: Schema | None, parent: str, removed: list[str]) -> None:
    if s is not None and s.get("x-kubernetes-preserve-unknown-fields"):
        _skip_prune(x, s, parent, removed)
        return
    if isinstance(x, dict):
        if s is None:
            removed += [_join(parent, k) for k in x]
            x.clear()
            return
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        properties = props(s)
        for key in list(x):
            if embedded and key in META_FIELDS:
                continue
            if key in properties:
                _prune(x[key], properties[key], _join(parent, key), removed)
            elif has_additional(s):
                _prune(x[key], additional_schema(s), _join(parent, key), removed)
            else:
                if key not in META_FIELDS or parent:
                    removed.append(_join(parent, key))
                del x[key]
    elif isinstance(x, list):
        item = items_schema(s) if s is not None else None
        for index, value in enumerate(x):
            _prune(value, item, f"{parent}[{index}]", removed)


def _skip_prune(x: Any, s: Schema, parent: str, removed: list[str]) -> None:
    if isinstance(x, dict):
        embedded = bool(s.get("x-kubernetes-embedded-resource"))
        properties = props(s)
        for key in list(x):
            if embedded and key in META_FIELDS:
                continue
            if key in properties:
                _prune(x[key], properties[key], _join(parent, key), removed)
            elif has_additional(s):
                _prune(x[key], additional_schema(s), _join(parent, key), removed)
    elif isinstance(x, list):
        item = items_schema(s)
        if item is not None:
            for index, value in enumerate(x):
                _skip_prune(value, item, f"{parent}[{index}]", removed)


def _non_nullable_null(x: Any, s: Schema | None) -> bool:
    return x is None and s is not None and not s.get("nullable")


def apply_defaults(x: Any, s: Schema | None) -> None:
    """Fill in `default`s of missing (or null, when not nullable) properties, items and map values."""
    if s is None:
        return
    if isinstance(x, dict):
        properties = props(s)
        for key, prop in properties.items():
            if prop.get("default") is None:
                continue
            if key not in x or _non_nullable_null(x[key], prop):
                x[key] = copy.deepcopy(prop["default"])
        extra = additional_schema(s)
        for key in list(x):
            if key in properties:
                apply_defaults(x[key], properties[key])
            elif has_additional(s):
                if _non_nullable_null(x[key], extra) and extra is not None:
                    x[key] = copy.deepcopy(extra.get("default"))
                apply_defaults(x[key], extra)
    elif isinstance(x, list):
        item = items_schema(s)
        for index in range(len(x)):
            if _non_nullable_null(x[index], item) and item is not None:
                x[index] = copy.deepcopy(item.get("default"))
            apply_defaults(x[index], item)


def prune_nulls(x: Any, s: Schema | None) -> None:
    """Drop nulls of non-nullable fields without defaults (PruneNonNullableNullsWithoutDefaults)."""
    if isinstance(x, dict):
        for key in list(x):
            sub = field_schema(s, key)
            if x[key] is None and sub is not None and not sub.get("nullable") and sub.get("default") is None:
                del x[key]
            else:
                prune_nulls(x[key], sub)
    elif isinstance(x, list):
        item = items_schema(s) if s is not None else None
        for value in x:
            prune_nulls(value, item)


# --- lists of type set and map, embedded resources -------------------------------------------------------
def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def list_errors(obj: Any, s: Schema | None, path: str = "") -> list[FieldError]:
    """Duplicates in x-kubernetes-list-type set/map lists (ValidateListSetsAndMaps)."""
    if s is None or not isinstance(obj, dict):
        return []
    found: list[FieldError] = []
    extra = additional_schema(s)
    properties = props(s)
    for key, value in obj.items():
        if key in properties:
            found += _list_value_errors(value, properties[key], _join(path, key))
        elif extra is not None:
            found += _list_value_errors(value, extra, f"{path}[{key}]")
    return found


def _list_value_errors(value: Any, s: Schema, path: str) -> list[FieldError]:
    if isinstance(value, dict):
        return list_errors(value, s, path)
    if not isinstance(value, list):
        return []
    found: list[FieldError] = []
    list_type = s.get("x-kubernetes-list-type")
    if list_type == "set":
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            key = _canonical(item)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] == 2:
                found.append(errors.duplicate(f"{path}[{index}]", bad_value(item)))
    elif list_type == "map":
        bad = next((i for i, item in enumerate(value) if item is not None and not isinstance(item, dict)), None)
        if bad is not None:
            found.append(errors.invalid(f"{path}[{bad}]", bad_value(value[bad]),
                                        "must be an object for an array of list-type map"))
        else:
            keys = s.get("x-kubernetes-list-map-keys") or []
            seen = {}
            for index, item in enumerate(value):
                key_value = {k: item[k] for k in keys if isinstance(item, dict) and k in item}
                canonical = _canonical(key_value)
                seen[canonical] = seen.get(canonical, 0) + 1
                if seen[canonical] == 2:
                    found.append(errors.duplicate(f"{path}[{index}]", bad_value(key_value)))
    item = items_schema(s)
    if item is not None:
        for index, entry in enumerate(value):
            found += _list_value_errors(entry, item, f"{path}[{index}]")
    return found


def embedded_errors(obj: Any, s: Schema | None, path: str = "") -> list[FieldError]:
    """apiVersion/kind/metadata of x-kubernetes-embedded-resource objects below the root (objectmeta.Validate)."""
    found: list[FieldError] = []
    if s is None:
        return found
    if isinstance(obj, dict):
        if s.get("x-kubernetes-embedded-resource") and path:
            found += _embedded_resource_errors(obj, path)
        extra = additional_schema(s)
        properties = props(s)
        for key, value in obj.items():
            if key in properties:
                found += embedded_errors(value, properties[key], _join(path, key))
            elif extra is not None:
                found += embedded_errors(value, extra, f"{path}[{key}]")
    elif isinstance(obj, list):
        item = items_schema(s)
        for index, value in enumerate(obj):
            found += embedded_errors(value, item, f"{path}[{index}]")
    return found


def _embedded_resource_errors(x: dict, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if "apiVersion" not in x:
        found.append(errors.required(f"{path}.apiVersion"))
    if "kind" not in x:
        found.append(errors.required(f"{path}.kind"))
    for key in ("apiVersion", "kind"):
        if key in x:
            value = x[key]
            if not isinstance(value, str):
                found.append(errors.invalid(f"{path}.{key}", bad_value(value), "must be a string"))
            elif not value:
                found.append(errors.invalid(f"{path}.{key}", value, "must not be empty"))
    meta = x.get("metadata")
    if "metadata" in x and not isinstance(meta, dict):
        found.append(errors.invalid(f"{path}.metadata", bad_value(meta), "must be an object"))
    elif isinstance(meta, dict):
        for key in (meta.get("labels") or {}) if isinstance(meta.get("labels"), dict) else {}:
            found += [errors.invalid(f"{path}.metadata.labels", key, p) for p in qualified_name(key)]
    return found
