"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON objects.

kubectl's typed clients (e.g. `kubectl create namespace`) send protobuf. A body is the magic
"k8s\\x00" followed by a runtime.Unknown {typeMeta, raw}; raw is the object's own message. Only kinds
with a schema below can be decoded; others get 415 so the client knows to send JSON.
Field numbers are upstream's generated.proto ones.
"""
from __future__ import annotations

import base64
import datetime
from dataclasses import dataclass
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    pass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | int | bool | message | map | bytesmap | intorstring | time
    schema: "dict[int, Field] | None" = None
    repeated: bool = False
    keep_zero: bool = False  # JSON without omitempty: "", 0 and false are written out


TIME = "time"
OWNER_REFERENCE = {1: Field("kind", "string"), 3: Field("name", "string"), 4: Field("uid", "string"),
                   5: Field("apiVersion", "string"), 6: Field("controller", "bool"),
                   7: Field("blockOwnerDeletion", "bool")}
OBJECT_META = {
    1: Field("name", "string"), 2: Field("generateName", "string"), 3: Field("namespace", "string"),
    5: Field("uid", "string"), 6: Field("resourceVersion", "string"), 7: Field("generation", "int"),
    8: Field("creationTimestamp", TIME), 9: Field("deletionTimestamp", TIME),
    10: Field("deletionGracePeriodSeconds", "int"), 11: Field("labels", "map"), 12: Field("annotations", "map"),
    13: Field("ownerReferences", "message", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", "string", repeated=True),
}
NAMESPACE = {1: Field("metadata", "message", OBJECT_META),
             2: Field("spec", "message", {1: Field("finalizers", "string", repeated=True)}),
             3: Field("status", "message", {1: Field("phase", "string")})}
CONFIG_MAP = {1: Field("metadata", "message", OBJECT_META), 2: Field("data", "map"),
              3: Field("binaryData", "bytesmap"), 4: Field("immutable", "bool")}
SECRET = {1: Field("metadata", "message", OBJECT_META), 2: Field("data", "bytesmap"), 3: Field("type", "string"),
          4: Field("stringData", "map"), 5: Field("immutable", "bool")}
SERVICE_PORT = {1: Field("name", "string"), 2: Field("protocol", "string"), 3: Field("port", "int", keep_zero=True),
                4: Field("targetPort", "intorstring"), 5: Field("nodePort", "int"), 6: Field("appProtocol", "string")}
SESSION_AFFINITY_CONFIG = {1: Field("clientIP", "message", {1: Field("timeoutSeconds", "int")})}
SERVICE_SPEC = {
    1: Field("ports", "message", SERVICE_PORT, repeated=True), 2: Field("selector", "map"),
    3: Field("clusterIP", "string"), 4: Field("type", "string"), 5: Field("externalIPs", "string", repeated=True),
    7: Field("sessionAffinity", "string"), 8: Field("loadBalancerIP", "string"),
    9: Field("loadBalancerSourceRanges", "string", repeated=True), 10: Field("externalName", "string"),
    11: Field("externalTrafficPolicy", "string"), 12: Field("healthCheckNodePort", "int"),
    13: Field("publishNotReadyAddresses", "bool"),
    14: Field("sessionAffinityConfig", "message", SESSION_AFFINITY_CONFIG),
    17: Field("ipFamilyPolicy", "string"), 18: Field("clusterIPs", "string", repeated=True),
    19: Field("ipFamilies", "string", repeated=True), 20: Field("allocateLoadBalancerNodePorts", "bool", keep_zero=True),
    21: Field("loadBalancerClass", "string"), 22: Field("internalTrafficPolicy", "string"),
    23: Field("trafficDistribution", "string"),
}
SERVICE = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", SERVICE_SPEC),
           3: Field("status", "message", {1: Field("loadBalancer", "message", {})})}
# ResourceQuota (`kubectl create quota`) and policy/v1 Eviction (`kubectl drain`): scheduling's kinds.
RESOURCE_QUOTA = {1: Field("metadata", "message", OBJECT_META),
                  2: Field("spec", "message", {1: Field("hard", "quantitymap"), 2: Field("scopes", "string", repeated=True),
                                               3: Field("scopeSelector", "message", {1: Field(
                                                   "matchExpressions", "message",
                                                   {1: Field("scopeName", "string"), 2: Field("operator", "string"),
                                                    3: Field("values", "string", repeated=True)}, repeated=True)})}),
                  3: Field("status", "message", {1: Field("hard", "quantitymap"), 2: Field("used", "quantitymap")})}
DELETE_OPTIONS = {1: Field("gracePeriodSeconds", "int", keep_zero=True),
                  2: Field("preconditions", "message", {1: Field("uid", "string"), 2: Field("resourceVersion", "string")}),
                  3: Field("orphanDependents", "bool"), 4: Field("propagationPolicy", "string"),
                  5: Field("dryRun", "string", repeated=True)}
EVICTION = {1: Field("metadata", "message", OBJECT_META), 2: Field("deleteOptions", "message", DELETE_OPTIONS)}
# Kinds kubectl's typed clients send as protobuf (`kubectl create namespace|configmap|secret|service`).
SCHEMAS: dict[tuple[str, str], dict[int, Field]] = {
    ("v1", "Namespace"): NAMESPACE, ("v1", "ConfigMap"): CONFIG_MAP, ("v1", "Secret"): SECRET,
    ("v1", "Service"): SERVICE,
    ("v1", "ResourceQuota"): RESOURCE_QUOTA, ("policy/v1", "Eviction"): EVICTION,
}

_TYPE_META = {1: Field("apiVersion", "string"), 2: Field("kind", "string")}
_UNKNOWN = {1: Field("typeMeta", "message", _TYPE_META), 2: Field("raw", "bytes"),
            3: Field("contentEncoding", "string"), 4: Field("contentType", "string")}
_TIMESTAMP = {1: Field("seconds", "int"), 2: Field("nanos", "int")}
_MAP_ENTRY = {1: Field("key", "string", keep_zero=True), 2: Field("value", "string", keep_zero=True)}
_BYTES_MAP_ENTRY = {1: Field("key", "string", keep_zero=True), 2: Field("value", "bytes", keep_zero=True)}
_QUANTITY_MAP_ENTRY = {1: Field("key", "string", keep_zero=True),
                       2: Field("value", "message", {1: Field("string", "string")}, keep_zero=True)}
_INT_OR_STRING = {1: Field("type", "int"), 2: Field("intVal", "int"), 3: Field("strVal", "string")}


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def _fields(data: bytes):
    """Yield (field number, wire type, value) where value is an int or bytes."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _varint(data, pos)
        elif wire_type == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos:pos + length], pos + length
            if len(value) != length:
                raise ProtobufError("truncated field")
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if pos + size > len(data):
                raise ProtobufError("truncated field")
            value, pos = int.from_bytes(data[pos:pos + size], "little"), pos + size
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(data: bytes, schema: dict[int, Field]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, wire_type, value in _fields(data):
        field = schema.get(number)
        if field is None:
            continue
        if wire_type != (0 if field.kind in ("int", "bool") else 2):  # varints, else length-delimited
            raise ProtobufError(f"field {field.name}: wire type {wire_type} does not match its type {field.kind}")
        if field.kind == "string":
            try:
                decoded: Any = value.decode()
            except UnicodeDecodeError:
                raise ProtobufError(f"field {field.name}: invalid UTF-8") from None
        elif field.kind == "bytes":
            decoded = bytes(value)
        elif field.kind == "base64":  # a []byte field: base64 text in its JSON form
            decoded = base64.b64encode(value).decode()
        elif field.kind == "int":
            decoded = _signed(value)
        elif field.kind == "bool":
            decoded = bool(value)
        elif field.kind == TIME:
            stamp = _message(value, _TIMESTAMP)
            # Go's zero time (an empty Timestamp) is JSON null, e.g. a pod template's creationTimestamp.
            decoded = datetime.datetime.fromtimestamp(stamp.get("seconds", 0), datetime.timezone.utc) \
                .strftime("%Y-%m-%dT%H:%M:%SZ") if stamp else None
        elif field.kind == "map":
            entry = _message(value, _MAP_ENTRY)
            result.setdefault(field.name, {})[entry.get("key", "")] = entry.get("value", "")
            continue
        elif field.kind == "quantitymap":
            entry = _message(value, _QUANTITY_MAP_ENTRY)
            result.setdefault(field.name, {})[entry.get("key", "")] = entry.get("value", {}).get("string", "0")
            continue
        elif field.kind == "bytesmap":
            entry = _message(value, _BYTES_MAP_ENTRY)
            result.setdefault(field.name, {})[entry.get("key", "")] = \
                base64.b64encode(entry.get("value", b"")).decode()
            continue
        elif field.kind == "intorstring":
            parts = _message(value, _INT_OR_STRING)
            decoded = parts.get("strVal", "") if parts.get("type") == 1 else parts.get("intVal", 0)
        else:
            decoded = _message(value, field.schema or {})
        if field.repeated:
            result.setdefault(field.name, []).append(decoded)
        elif decoded in ("", 0, False) and not field.keep_zero:
            # proto2 writes empty optional fields; their JSON form omits them (omitempty).
            result.pop(field.name, None)
        else:
            result[field.name] = decoded
    return result


def decode_object(body: bytes) -> dict[str, Any]:
    """A protobuf-encoded object as its JSON form; ProtobufError if it is malformed or of an unknown kind."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing protobuf envelope prefix")
    envelope = _message(body[len(MAGIC):], _UNKNOWN)
    type_meta = envelope.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    schema = SCHEMAS.get((api_version, kind))
    if schema is None:
        raise ProtobufError(f"no protobuf schema for {api_version}/{kind}")
    obj = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": api_version, "kind": kind, **obj}


# Workload kinds (engineer H) keep their schemas in their own module.
from apiserver.kinds.workload_protobuf import WORKLOAD_SCHEMAS  # noqa: E402 - needs Field and OBJECT_META above

SCHEMAS.update(WORKLOAD_SCHEMAS)

# RBAC and the review kinds (engineer R), likewise.
from apiserver.kinds.rbac_protobuf import RBAC_SCHEMAS  # noqa: E402 - needs Field and OBJECT_META above

SCHEMAS.update(RBAC_SCHEMAS)

# CertificateSigningRequests (engineer C), likewise.
from apiserver.kinds.certificates_protobuf import CERTIFICATES_SCHEMAS  # noqa: E402 - needs Field and OBJECT_META

SCHEMAS.update(CERTIFICATES_SCHEMAS)
