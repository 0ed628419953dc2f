"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON objects.

kubectl's typed clients (e.g. `kubectl create namespace`) send protobuf. A body is the magic
"k8s\\x00" followed by a runtime.Unknown {typeMeta, raw}; raw is the object's own message. Only kinds
with a schema below can be decoded; others get 415 so the client knows to send JSON.
Field numbers are upstream's generated.proto ones.
"""
from __future__ import annotations

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
    kind: str  # string | int | bool | message | map | time
    schema: "dict[int, Field] | None" = None
    repeated: bool = False


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
SCHEMAS: dict[tuple[str, str], dict[int, Field]] = {("v1", "Namespace"): NAMESPACE}

_TYPE_META = {1: Field("apiVersion", "string"), 2: Field("kind", "string")}
_UNKNOWN = {1: Field("typeMeta", "message", _TYPE_META), 2: Field("raw", "bytes"),
            3: Field("contentEncoding", "string"), 4: Field("contentType", "string")}
_TIMESTAMP = {1: Field("seconds", "int"), 2: Field("nanos", "int")}
_MAP_ENTRY = {1: Field("key", "string"), 2: Field("value", "string")}


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
        elif wire_type == 1:
            value, pos = int.from_bytes(data[pos:pos + 8], "little"), pos + 8
        elif wire_type == 5:
            value, pos = int.from_bytes(data[pos:pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire_type}")
        yield number, wire_type, value


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _message(data: bytes, schema: dict[int, Field]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for number, _wire_type, value in _fields(data):
        field = schema.get(number)
        if field is None:
            continue
        if field.kind == "string":
            decoded: Any = value.decode()
        elif field.kind == "bytes":
            decoded = bytes(value)
        elif field.kind == "int":
            decoded = _signed(value)
        elif field.kind == "bool":
            decoded = bool(value)
        elif field.kind == TIME:
            stamp = _message(value, _TIMESTAMP)
            decoded = datetime.datetime.fromtimestamp(stamp.get("seconds", 0), datetime.timezone.utc) \
                .strftime("%Y-%m-%dT%H:%M:%SZ")
        elif field.kind == "map":
            entry = _message(value, _MAP_ENTRY)
            result.setdefault(field.name, {})[entry.get("key", "")] = entry.get("value", "")
            continue
        else:
            decoded = _message(value, field.schema or {})
        if field.repeated:
            result.setdefault(field.name, []).append(decoded)
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
