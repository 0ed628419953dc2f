import pytest

from apiserver.protobuf import MAGIC, ProtobufError, decode_object


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, payload: bytes | str | int) -> bytes:
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + field(1, field(1, api_version) + field(2, kind)) + field(2, raw) + field(4, "application/vnd.kubernetes.protobuf")


def test_decodes_a_namespace_like_kubectl_create_namespace_sends():
    meta = field(1, "team") + field(11, field(1, "env") + field(2, "dev")) + field(14, "a") + field(14, "b") + \
        field(8, field(1, 1767225600)) + field(7, 3) + field(10, -1)
    raw = field(1, meta) + field(2, field(1, "kubernetes")) + field(3, b"")
    assert decode_object(envelope("v1", "Namespace", raw)) == {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "team", "labels": {"env": "dev"}, "finalizers": ["a", "b"],
                     "creationTimestamp": "2026-01-01T00:00:00Z", "generation": 3, "deletionGracePeriodSeconds": -1},
        "spec": {"finalizers": ["kubernetes"]}, "status": {}}


def test_rejects_unknown_kinds_and_garbage():
    with pytest.raises(ProtobufError):
        decode_object(envelope("v1", "Pod", b""))
    with pytest.raises(ProtobufError):
        decode_object(b"not protobuf")
    with pytest.raises(ProtobufError):
        decode_object(MAGIC + b"\x0a\x05ab")
