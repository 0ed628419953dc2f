"""Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) into JSON objects.

kubectl's typed clients (e.g. `kubectl create namespace`) send protobuf. A body is the magic
"k8s\\x00" followed by a runtime.Unknown {typeMeta, raw}; raw is the object's own message. Only kinds
with a schema in SCHEMAS (this package's modules, one per API group family) can be decoded; others
get 415 so the client knows to send JSON.
Field numbers are upstream's generated.proto ones.
"""
from __future__ import annotations

import base64
import datetime
from typing import Any

from apiserver.protobuf.batch import BATCH_SCHEMAS
from apiserver.protobuf.certificates import CERTIFICATES_SCHEMAS
from apiserver.protobuf.core import CORE_SCHEMAS, DELETE_OPTIONS
from apiserver.protobuf.fields import TIME, Field
from apiserver.protobuf.networking import NETWORKING_SCHEMAS
from apiserver.protobuf.policy import POLICY_SCHEMAS
from apiserver.protobuf.rbac import RBAC_SCHEMAS
from apiserver.protobuf.serviceaccounts import SERVICE_ACCOUNT_SCHEMAS
from apiserver.protobuf.workloads import WORKLOAD_SCHEMAS
from shipmate.timeutil import rfc3339

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    pass


# (apiVersion, kind) → the schema of its message.
SCHEMAS: dict[tuple[str, str], dict[int, Field]] = {
    **CORE_SCHEMAS, **WORKLOAD_SCHEMAS, **RBAC_SCHEMAS, **CERTIFICATES_SCHEMAS, **BATCH_SCHEMAS,
    **NETWORKING_SCHEMAS, **POLICY_SCHEMAS, **SERVICE_ACCOUNT_SCHEMAS}

_TYPE_META = {1: Field("apiVersion", "string"), 2: Field("kind", "string")}
_UNKNOWN = {1: Field("typeMeta", "message", _TYPE_META), 2: Field("raw", "bytes"),
            3: Field("contentEncoding", "string"), 4: Field("contentType", "string")}
_TIMESTAMP = {1: Field("seconds", "int"), 2: Field("nanos", "int")}
_MAP_ENTRY = {1: Field("key", "string", keep_zero=True), 2: Field("value", "string", keep_zero=True)}
_BYTES_MAP_ENTRY = {1: Field("key", "string", keep_zero=True), 2: Field("value", "bytes", keep_zero=True)}
_QUANTITY_MAP_ENTRY = {1: Field("key", "string", keep_zero=True),
                       2: Field("value", "message", {1: Field("string", "string")}, keep_zero=True)}
_INT_OR_STRING = {1: Field("type", "int"), 2: Field("intVal", "int"), 3: Field("strVal", "string")}
_QUANTITY = {1: Field("string", "string")}


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
            decoded = rfc3339(datetime.datetime.fromtimestamp(stamp.get("seconds", 0), datetime.timezone.utc)) \
                if stamp else None
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
        elif field.kind == "inline":  # an embedded Go struct: its fields are the parent's in JSON
            result.update(_message(value, field.schema or {}))
            continue
        elif field.kind == "quantity":
            decoded = _message(value, _QUANTITY).get("string", "0")
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
    if schema is None and kind == "DeleteOptions":  # registered in every group version (and meta.k8s.io/v1)
        schema = DELETE_OPTIONS
    if schema is None:
        raise ProtobufError(f"no protobuf schema for {api_version}/{kind}")
    obj = _message(envelope.get("raw", b""), schema)
    return {"apiVersion": api_version, "kind": kind, **obj}
