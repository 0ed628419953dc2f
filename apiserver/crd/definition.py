"""The CustomResourceDefinition object: accessors (versions, schemas, subresources, columns, conditions),
defaulting, and validation with upstream's messages and field paths.

Upstream validates the internal form of a v1 CRD, in which a schema (subresources, printer columns,
selectable fields) that every version shares sits at the top level: errors in it are reported at
`spec.validation.openAPIV3Schema…` (`spec.subresources…`, `spec.additionalPrinterColumns[i]…`), per-version ones
at `spec.versions[i].schema.openAPIV3Schema…`. `_internal_view` builds that form.
"""
from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from apiserver import errors
from apiserver.crd import jsonpath
from apiserver.crd.gofmt import bad_value
from apiserver.crd.schema import depth, has_additional, props, schema_errors, schema_has
from apiserver.errors import FieldError
from apiserver.validation import dns1035_label, dns1123_subdomain, validate_meta_update, validate_object_meta
from apiserver.webhook_rules import client_config_errors

Obj = dict[str, Any]
GROUP = "apiextensions.k8s.io"
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
PRINTER_COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
PRINTER_COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
MAX_SELECTABLE_FIELDS = 8
# Bounds on what one CRD may make every server hold (ours; upstream only has etcd's request size).
MAX_VERSIONS = 32
MAX_SCHEMA_DEPTH = 32        # levels of properties/items/additionalProperties/allOf… below the root
MAX_SPEC_BYTES = 1536 * 1024  # the encoded spec (etcd's default request limit, 1.5 MiB)
MAX_CRDS = 500               # CustomResourceDefinitions per cluster (each is a set of registries and watches)

AGE_COLUMN = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
              "description": "CreationTimestamp is a timestamp representing the server time when this object was "
                             "created. It is not guaranteed to be set in happens-before order across separate "
                             "operations. Clients may not set this value. It is represented in RFC3339 form and is "
                             "in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
                             "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md"
                             "#metadata"}


# --- accessors ---------------------------------------------------------------------------------------------
def spec_of(crd: Obj) -> Obj:
    spec = crd.get("spec")
    return spec if isinstance(spec, dict) else {}


def versions(crd: Obj) -> list[Obj]:
    value = spec_of(crd).get("versions")
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def version(crd: Obj, name: str) -> Obj | None:
    return next((v for v in versions(crd) if v.get("name") == name), None)


def storage_version(crd: Obj) -> str:
    return next((str(v.get("name")) for v in versions(crd) if v.get("storage")), "")


def schema_for(crd: Obj, name: str) -> Obj | None:
    entry = version(crd, name) or {}
    schema = (entry.get("schema") or {}).get("openAPIV3Schema") if isinstance(entry.get("schema"), dict) else None
    return schema if isinstance(schema, dict) else None


def subresources_for(crd: Obj, name: str) -> Obj:
    entry = version(crd, name) or {}
    value = entry.get("subresources")
    return value if isinstance(value, dict) else {}


def columns_for(crd: Obj, name: str) -> list[Obj]:
    entry = version(crd, name) or {}
    columns = [c for c in entry.get("additionalPrinterColumns") or [] if isinstance(c, dict)]
    return columns or [AGE_COLUMN]


def selectable_fields_for(crd: Obj, name: str) -> list[str]:
    entry = version(crd, name) or {}
    return [str(f.get("jsonPath")) for f in entry.get("selectableFields") or [] if isinstance(f, dict)]


def accepted_names(crd: Obj) -> Obj:
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    names = status.get("acceptedNames")
    return names if isinstance(names, dict) else {}


def condition(crd: Obj, kind: str) -> Obj | None:
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    return next((c for c in status.get("conditions") or [] if isinstance(c, dict) and c.get("type") == kind), None)


def is_true(crd: Obj, kind: str) -> bool:
    found = condition(crd, kind)
    return bool(found) and found.get("status") == "True"


def set_condition(crd: Obj, new: Obj, now: str) -> None:
    """SetCRDCondition: the transition time moves only when the status changes."""
    conditions = crd.setdefault("status", {}).setdefault("conditions", [])
    for index, existing in enumerate(conditions):
        if existing.get("type") == new["type"]:
            if existing.get("status") != new["status"]:
                new = {**new, "lastTransitionTime": now}
            else:
                new = {**new, "lastTransitionTime": existing.get("lastTransitionTime") or now}
            conditions[index] = new
            return
    conditions.append({**new, "lastTransitionTime": now})


_KUBE_VERSION = re.compile(r"^v([1-9][0-9]*)(?:(alpha|beta)([1-9][0-9]*))?$")


def kube_version_key(name: str) -> tuple:
    """Sort key putting versions in kube-aware order (v2, v1, v11beta2, v10beta3, v3beta1, v12alpha1, …, then
    the rest alphabetically), as discovery orders a group's versions."""
    match = _KUBE_VERSION.match(name)
    if not match:
        return (3, name)
    major, stage, minor = int(match.group(1)), match.group(2), int(match.group(3) or 0)
    rank = {None: 0, "beta": 1, "alpha": 2}[stage]
    return (rank, -major, -minor)


def served_versions(crd: Obj) -> list[str]:
    return sorted((str(v.get("name")) for v in versions(crd) if v.get("served")), key=kube_version_key)


# --- defaulting ------------------------------------------------------------------------------------------
def default_crd(crd: Obj) -> None:
    spec = crd.get("spec")
    if not isinstance(spec, dict):
        return
    names = spec.get("names")
    if isinstance(names, dict):
        kind = names.get("kind")
        if not names.get("singular") and isinstance(kind, str):
            names["singular"] = kind.lower()
        if not names.get("listKind") and isinstance(kind, str) and kind:
            names["listKind"] = kind + "List"
    if spec.get("conversion") is None:
        spec["conversion"] = {"strategy": "None"}
    conversion = spec.get("conversion")
    if isinstance(conversion, dict):
        service = ((conversion.get("webhook") or {}).get("clientConfig") or {}).get("service") \
            if isinstance(conversion.get("webhook"), dict) else None
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443
    status = crd.get("status")
    if isinstance(status, dict) and not status.get("storedVersions"):
        stored = storage_version(crd)
        if stored:
            status["storedVersions"] = [stored]


# --- validation --------------------------------------------------------------------------------------------
def _internal_view(spec: Obj) -> tuple[Obj, list[Obj]]:
    """(top level, per-version entries) with what every version shares hoisted to the top level."""
    entries = [dict(v) for v in spec.get("versions") or [] if isinstance(v, dict)]
    top: Obj = {}
    for key, top_key in (("schema", "validation"), ("subresources", "subresources"),
                         ("additionalPrinterColumns", "additionalPrinterColumns"),
                         ("selectableFields", "selectableFields")):
        if not entries:
            continue
        first = entries[0].get(key)
        if all(_same(v.get(key), first) for v in entries):
            if first not in (None, []):
                top[top_key] = first
            for entry in entries:
                entry.pop(key, None)
    return top, entries


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) if (a or b) else True


def _name_errors(names: Obj, path: str) -> list[FieldError]:
    found = []
    for key in ("plural", "singular"):
        value = names.get(key)
        if isinstance(value, str) and value:
            problems = dns1035_label(value)
            if problems:
                found.append(errors.invalid(f"{path}.{key}", value, ",".join(problems)))
    for key in ("kind", "listKind"):
        value = names.get(key)
        if isinstance(value, str) and value:
            problems = dns1035_label(value.lower())
            if problems:
                found.append(errors.invalid(f"{path}.{key}", value, "may have mixed case, but should otherwise "
                                                                    "match: " + ",".join(problems)))
    for index, short in enumerate(names.get("shortNames") or []):
        problems = dns1035_label(str(short))
        if problems:
            found.append(errors.invalid(f"{path}.shortNames[{index}]", short, ",".join(problems)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        found.append(errors.invalid(f"{path}.listKind", names.get("listKind"), "kind and listKind may not be the "
                                                                               "same"))
    for index, category in enumerate(names.get("categories") or []):
        problems = dns1035_label(str(category))
        if problems:
            found.append(errors.invalid(f"{path}.categories[{index}]", category, ",".join(problems)))
    return found


def _column_errors(column: Any, path: str) -> list[FieldError]:
    if not isinstance(column, dict):
        return [errors.invalid(path, bad_value(column), "must be an object")]
    found = []
    if not column.get("name"):
        found.append(errors.required(f"{path}.name"))
    kind = column.get("type")
    types = ",".join(PRINTER_COLUMN_TYPES)
    if not kind:
        found.append(errors.required(f"{path}.type", f"must be one of {types}"))
    elif kind not in PRINTER_COLUMN_TYPES:
        found.append(errors.invalid(f"{path}.type", kind, f"must be one of {types}"))
    fmt = column.get("format")
    if fmt and fmt not in PRINTER_COLUMN_FORMATS:
        found.append(errors.invalid(f"{path}.format", fmt, f"must be one of {','.join(PRINTER_COLUMN_FORMATS)}"))
    path_text = column.get("jsonPath")
    if not path_text:
        found.append(errors.required(f"{path}.JSONPath"))
    else:
        problem = jsonpath.simple_path_problem(str(path_text))
        if problem:
            found.append(errors.invalid(f"{path}.JSONPath", path_text, problem))
        else:
            try:
                jsonpath.parse(str(path_text))
            except jsonpath.JSONPathError as exc:
                found.append(errors.invalid(f"{path}.JSONPath", path_text, f"unrecognized column definition: {exc}"))
    return found


def _subresource_errors(subresources: Any, path: str) -> list[FieldError]:
    if not isinstance(subresources, dict):
        return []
    scale = subresources.get("scale")
    if not isinstance(scale, dict):
        return []
    found = []
    for key, prefixes, under in (("specReplicasPath", (".spec.",), "should be a json path under .spec"),
                                 ("statusReplicasPath", (".status.",), "should be a json path under .status")):
        value = scale.get(key)
        if not value:
            found.append(errors.required(f"{path}.scale.{key}"))
        elif jsonpath.simple_path_problem(str(value)):
            found.append(errors.invalid(f"{path}.scale.{key}", value, jsonpath.simple_path_problem(str(value))))
        elif not str(value).startswith(prefixes):
            found.append(errors.invalid(f"{path}.scale.{key}", value, under))
    selector = scale.get("labelSelectorPath")
    if selector:
        if jsonpath.simple_path_problem(str(selector)):
            found.append(errors.invalid(f"{path}.scale.labelSelectorPath", selector,
                                        jsonpath.simple_path_problem(str(selector))))
        elif not str(selector).startswith((".spec.", ".status.")):
            found.append(errors.invalid(f"{path}.scale.labelSelectorPath", selector,
                                        "should be a json path under either .spec or .status"))
    return found


def _selectable_field_errors(fields: Any, schema: Obj | None, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if not isinstance(fields, list):
        return found
    seen: set[str] = set()
    for index, entry in enumerate(fields):
        where = f"{path}[{index}].jsonPath"
        text = entry.get("jsonPath") if isinstance(entry, dict) else None
        if not text:
            found.append(errors.required(where))
            continue
        node: Obj | None = schema
        parts = str(text).lstrip(".").split(".") if str(text).startswith(".") else []
        if not parts or any(not p for p in parts):
            found.append(errors.invalid(where, text, "is an invalid path: must start with a '.' and name fields"))
            continue
        for part in parts:
            node = props(node).get(part) if isinstance(node, dict) else None
        if node is None:
            found.append(errors.invalid(where, text, "is an invalid path: does not refer to a valid field"))
            continue
        if parts[0] == "metadata":
            found.append(errors.invalid(where, text, "must not point to fields in metadata"))
        if node.get("type") not in ("string", "boolean", "integer"):
            found.append(errors.invalid(where, text, "must point to a field of type string, boolean or integer. Enum "
                                                     "string fields and strings with formats are allowed."))
        if text in seen:
            found.append(errors.duplicate(where, text))
        seen.add(str(text))
    if len(seen) > MAX_SELECTABLE_FIELDS:
        found.append(FieldError("FieldValueTooMany", path, f"must have at most {MAX_SELECTABLE_FIELDS} items",
                                len(seen)))
    return found


def _validation_errors(validation: Any, status_enabled: bool, path: str) -> list[FieldError]:
    if not isinstance(validation, dict):
        return []
    schema = validation.get("openAPIV3Schema")
    if not isinstance(schema, dict):
        return []
    where = f"{path}.openAPIV3Schema"
    if depth(schema) > MAX_SCHEMA_DEPTH + 1:
        return [errors.forbidden(where, f"must not nest more than {MAX_SCHEMA_DEPTH} levels of properties, items, "
                                        "additionalProperties or value validations")]
    return schema_errors(schema, status_enabled, where)


def _has_status(subresources: Any) -> bool:
    return isinstance(subresources, dict) and subresources.get("status") is not None


def _conversion_errors(conversion: Any, path: str) -> list[FieldError]:
    if not isinstance(conversion, dict):
        return []
    strategy = conversion.get("strategy")
    found: list[FieldError] = []
    if not strategy:
        found.append(errors.required(f"{path}.strategy"))
    elif strategy not in ("None", "Webhook"):
        found.append(errors.not_supported(f"{path}.strategy", strategy, ["None", "Webhook"]))
    webhook = conversion.get("webhook") if isinstance(conversion.get("webhook"), dict) else None
    client = webhook.get("clientConfig") if webhook else None
    review_versions = (webhook or {}).get("conversionReviewVersions")
    if strategy == "Webhook":
        if client is None:
            found.append(errors.required(f"{path}.webhookClientConfig", "required when strategy is set to Webhook"))
        else:
            found += client_config_errors(f"{path}.webhookClientConfig", client, check_ca_bundle=False)
        if not review_versions:
            found.append(errors.required(f"{path}.conversionReviewVersions"))
        elif not any(v in ("v1", "v1beta1") for v in review_versions):
            found.append(errors.invalid(f"{path}.conversionReviewVersions", review_versions,
                                        "must include at least one of v1, v1beta1"))
    else:
        if client is not None:
            found.append(errors.forbidden(f"{path}.webhookClientConfig", "should not be set when strategy is not "
                                                                         "set to Webhook"))
        if review_versions:
            found.append(errors.forbidden(f"{path}.conversionReviewVersions", "should not be set when strategy is "
                                                                              "not set to Webhook"))
    return found


def _spec_errors(spec: Obj, path: str = "spec") -> list[FieldError]:
    found: list[FieldError] = []
    group = spec.get("group")
    if not group:
        found.append(errors.required(f"{path}.group"))
    elif dns1123_subdomain(str(group)):
        found.append(errors.invalid(f"{path}.group", group, ",".join(dns1123_subdomain(str(group)))))
    elif len(str(group).split(".")) < 2:
        found.append(errors.invalid(f"{path}.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        found.append(errors.required(f"{path}.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        found.append(errors.not_supported(f"{path}.scope", scope, ["Cluster", "Namespaced"]))
    top, entries = _internal_view(spec)
    raw_versions = spec.get("versions") if isinstance(spec.get("versions"), list) else []
    if len(raw_versions) > MAX_VERSIONS:
        found.append(FieldError("FieldValueTooMany", f"{path}.versions", f"must have at most {MAX_VERSIONS} items",
                                len(raw_versions)))
        return found
    if "validation" not in top:
        for index, entry in enumerate(entries):
            if not isinstance(entry.get("schema"), dict) or not isinstance(entry["schema"].get("openAPIV3Schema"),
                                                                           dict):
                found.append(errors.required(f"{path}.versions[{index}].schema.openAPIV3Schema"))
    storage_count, names_seen, unique = 0, set(), True
    for index, entry in enumerate(entries):
        where = f"{path}.versions[{index}]"
        storage_count += bool(entry.get("storage"))
        name = str(entry.get("name") or "")
        unique = unique and name not in names_seen
        names_seen.add(name)
        problems = dns1035_label(name)
        if problems:
            found.append(errors.invalid(f"{where}.name", name, ",".join(problems)))
        deprecated, warning = entry.get("deprecated"), entry.get("deprecationWarning")
        if not deprecated and warning is not None:
            found.append(errors.invalid(f"{where}.deprecationWarning", warning, "can only be set for deprecated "
                                                                                "versions"))
        elif warning is not None and len(str(warning)) > 256:
            found.append(errors.invalid(f"{where}.deprecationWarning", warning, "must be <= 256 characters long"))
        elif warning is not None and not str(warning):
            found.append(errors.invalid(f"{where}.deprecationWarning", warning, "must not be an empty string"))
        subresources = entry.get("subresources", top.get("subresources"))
        found += _validation_errors(entry.get("schema"), _has_status(subresources), f"{where}.schema")
        found += _subresource_errors(entry.get("subresources"), f"{where}.subresources")
        for column_index, column in enumerate(entry.get("additionalPrinterColumns") or []):
            found += _column_errors(column, f"{where}.additionalPrinterColumns[{column_index}]")
        if entry.get("selectableFields"):
            schema = (entry.get("schema") or top.get("validation") or {}).get("openAPIV3Schema")
            found += _selectable_field_errors(entry["selectableFields"], schema, f"{where}.selectableFields")
    shown = bad_value(raw_versions)
    if not unique:
        found.append(errors.invalid(f"{path}.versions", shown, "must contain unique version names"))
    if storage_count != 1:
        found.append(errors.invalid(f"{path}.versions", shown, "must have exactly one version marked as storage "
                                                               "version"))
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    for key in ("plural", "singular", "kind", "listKind"):
        if not names.get(key):
            found.append(errors.required(f"{path}.names.{key}"))
    found += _name_errors(names, f"{path}.names")
    any_status = _has_status(top.get("subresources")) or any(_has_status(e.get("subresources")) for e in entries)
    found += _validation_errors(top.get("validation"), any_status, f"{path}.validation")
    found += _subresource_errors(top.get("subresources"), f"{path}.subresources")
    for column_index, column in enumerate(top.get("additionalPrinterColumns") or []):
        found += _column_errors(column, f"{path}.additionalPrinterColumns[{column_index}]")
    if top.get("selectableFields"):
        found += _selectable_field_errors(top["selectableFields"], (top.get("validation") or {}).get("openAPIV3Schema"),
                                          f"{path}.selectableFields")
    found += _conversion_errors(spec.get("conversion"), f"{path}.conversion")
    return found


def _status_errors(crd: Obj) -> list[FieldError]:
    status = crd.get("status") if isinstance(crd.get("status"), dict) else {}
    found = _name_errors(accepted_names(crd), "status.acceptedNames")
    stored = status.get("storedVersions") or []
    if not stored:
        return found + [errors.invalid("status.storedVersions", bad_value(stored), "must have at least one stored "
                                                                                   "version")]
    positions = {name: index for index, name in enumerate(stored)}
    for entry in versions(crd):
        name = entry.get("name")
        if entry.get("storage") and name not in positions:
            found.append(errors.invalid("status.storedVersions", bad_value(stored), f"must have the storage version "
                                                                                    f"{name}"))
        positions.pop(name, None)
    for name, index in positions.items():
        found.append(errors.invalid(f"status.storedVersions[{index}]", name,
                                    f"missing from spec.versions; {name} was previously a storage version, and must "
                                    f"remain in spec.versions until a storage migration ensures no data remains "
                                    f"persisted in {name} and removes {name} from status.storedVersions"))
    return found


def _crd_name_validator(crd: Obj):
    spec = spec_of(crd)
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    required = f"{names.get('plural', '')}.{spec.get('group', '')}"

    def check(name: str) -> list[str]:
        problems = dns1123_subdomain(name)
        if name != required:
            problems.append('must be spec.names.plural+"."+spec.group')
        return problems
    return check


def _size_errors(crd: Obj) -> list[FieldError]:
    size = len(json.dumps(crd.get("spec"), separators=(",", ":")))
    if size > MAX_SPEC_BYTES:
        return [errors.forbidden("spec", f"must not be larger than {MAX_SPEC_BYTES} bytes when encoded (is {size})")]
    return []


APPROVAL_ANNOTATION = "api-approved.kubernetes.io"
_APPROVAL_LINK = "see https://github.com/kubernetes/enhancements/pull/1111"


def is_protected_group(group: Any) -> bool:
    text = str(group or "")
    return text in ("k8s.io", "kubernetes.io") or text.endswith((".k8s.io", ".kubernetes.io"))


def _approval_state(crd: Obj) -> tuple[str, str]:
    annotations = (crd.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(APPROVAL_ANNOTATION) if isinstance(annotations, dict) else None
    if not value:
        return "missing", f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}", {_APPROVAL_LINK}'
    if value.startswith("unapproved"):
        return "bypassed", f'not approved: "{value}"'
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme and parsed.netloc:
        return "approved", f"approved in {value}"
    return "invalid", (f'protected groups must have approval annotation "{APPROVAL_ANNOTATION}" with either a URL or '
                       f'a reason starting with "unapproved", {_APPROVAL_LINK}')


def _approval_errors(crd: Obj, old: Obj | None) -> list[FieldError]:
    if not is_protected_group(spec_of(crd).get("group")):
        return []
    state, reason = _approval_state(crd)
    if old is not None and _approval_state(old)[0] == state:
        return []
    where = f"metadata.annotations[{APPROVAL_ANNOTATION}]"
    if state == "missing":
        return [errors.required(where, reason)]
    if state == "invalid":
        value = ((crd.get("metadata") or {}).get("annotations") or {}).get(APPROVAL_ANNOTATION)
        return [errors.invalid(where, value, reason)]
    return []


def validate_crd(crd: Obj, old: Obj | None = None) -> list[FieldError]:
    found = validate_object_meta(crd, False, _crd_name_validator(crd))
    found += _size_errors(crd)
    if found and any(e.field == "spec" for e in found):
        return found
    found += _spec_errors(spec_of(crd))
    found += _status_errors(crd)
    found += _approval_errors(crd, old)
    if spec_of(crd).get("preserveUnknownFields") is True:
        found.append(errors.invalid("spec.preserveUnknownFields", True, "cannot set to true, set "
                                                                        "x-kubernetes-preserve-unknown-fields to true "
                                                                        "in spec.versions[*].schema instead"))
    return found


def validate_crd_update(new: Obj, old: Obj) -> list[FieldError]:
    found = validate_crd(new, old) + validate_meta_update(new, old)
    spec, old_spec = spec_of(new), spec_of(old)
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    old_names = old_spec.get("names") if isinstance(old_spec.get("names"), dict) else {}
    if is_true(old, "Established"):
        if spec.get("scope") != old_spec.get("scope"):
            found.append(errors.invalid("spec.scope", spec.get("scope"), "field is immutable"))
        if names.get("kind") != old_names.get("kind"):
            found.append(errors.invalid("spec.names.kind", names.get("kind"), "field is immutable"))
    if spec.get("group") != old_spec.get("group"):
        found.append(errors.invalid("spec.group", spec.get("group"), "field is immutable"))
    if names.get("plural") != old_names.get("plural"):
        found.append(errors.invalid("spec.names.plural", names.get("plural"), "field is immutable"))
    return found


def validate_crd_status(new: Obj, old: Obj) -> list[FieldError]:
    return validate_meta_update(new, old) + _name_errors(accepted_names(new), "status.acceptedNames")


def has_defaults(crd: Obj) -> bool:
    return any(schema_has(schema_for(crd, str(v.get("name"))), lambda s: s.get("default") is not None)
               for v in versions(crd))


__all__ = ["AGE_COLUMN", "CLEANUP_FINALIZER", "MAX_CRDS", "MAX_SCHEMA_DEPTH", "MAX_SPEC_BYTES", "MAX_VERSIONS",
           "accepted_names", "columns_for", "condition", "default_crd", "has_additional", "has_defaults", "is_true",
           "kube_version_key", "schema_for", "selectable_fields_for", "served_versions", "set_condition",
           "storage_version", "subresources_for", "validate_crd", "validate_crd_status", "validate_crd_update",
           "version", "versions"]
