import base64

import pytest

from apiserver import errors
from apiserver.kinds.configmaps import MAX_SIZE, ConfigMapStrategy, SecretStrategy
from apiserver.printers import configmap_row, secret_row
from apiserver.protobuf import MAGIC, decode_object

CONFIGMAPS = ConfigMapStrategy()
SECRETS = SecretStrategy()


def messages(problems):
    return [f"{p.field}: {p.message()}" for p in problems]


def configmap(**fields):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg", "namespace": "default"}, **fields}


def secret(**fields):
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "default"}, **fields}
    SECRETS.default(obj)
    return obj


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_configmap_key_names_and_duplicates():
    assert CONFIGMAPS.validate(configmap(data={"a.b-c_D": "1"}, binaryData={"bin": "AAE="})) == []
    problems = messages(CONFIGMAPS.validate(configmap(data={"a b": "1", "..x": "2", "k": "v"}, binaryData={"k": "AA=="})))
    assert problems[0].startswith('data[a b]: Invalid value: "a b": a valid config key must consist of alphanumeric '
                                  "characters, '-', '_' or '.'")
    assert "data[..x]: Invalid value: \"..x\": must not start with '..'" in problems
    assert 'data[k]: Invalid value: "k": duplicate of key present in binaryData' in problems


def test_configmap_size_limit_counts_data_and_binary_data():
    assert CONFIGMAPS.validate(configmap(data={"a": "x" * MAX_SIZE})) == []
    problems = messages(CONFIGMAPS.validate(configmap(data={"a": "x" * MAX_SIZE}, binaryData={"b": "AA=="})))
    assert problems == [": Too long: may not be more than 1048576 bytes"]


def test_immutable_configmap_rejects_data_changes_and_unsetting():
    old = configmap(data={"a": "1"}, immutable=True)
    assert CONFIGMAPS.validate_update(configmap(data={"a": "1"}, immutable=True), old) == []
    assert messages(CONFIGMAPS.validate_update(configmap(data={"a": "2"}, immutable=True), old)) == \
        ["data: Forbidden: field is immutable when `immutable` is set"]
    assert messages(CONFIGMAPS.validate_update(configmap(data={"a": "1"}), old)) == \
        ["immutable: Forbidden: field is immutable when `immutable` is set"]
    mutable = configmap(data={"a": "1"})
    assert CONFIGMAPS.validate_update(configmap(data={"a": "2"}, immutable=True), mutable) == []


def test_secret_defaults_type_and_merges_string_data():
    obj = secret(data={"a": b64("old"), "b": b64("keep")}, stringData={"a": "new"})
    assert obj["type"] == "Opaque" and "stringData" not in obj
    assert obj["data"] == {"a": b64("new"), "b": b64("keep")}
    assert SECRETS.validate(obj) == []


def test_secret_data_must_be_base64():
    with pytest.raises(errors.APIError) as caught:
        secret(data={"a": "not base64!"})
    assert caught.value.code == 400
    assert 'Secret in version "v1" cannot be handled as a Secret: illegal base64 data' in caught.value.message


def test_secret_type_rules_size_and_immutability():
    assert messages(SECRETS.validate(secret(type="kubernetes.io/tls", data={"tls.crt": b64("c")}))) == \
        ["data[tls.key]: Required value"]
    assert messages(SECRETS.validate(secret(data={"a": base64.b64encode(b"x" * (MAX_SIZE + 1)).decode()}))) == \
        ["data: Too long: may not be more than 1048576 bytes"]
    old = secret(data={"a": b64("1")}, immutable=True)
    assert messages(SECRETS.validate_update(secret(type="example.com/other", data={"a": b64("2")},
                                                   immutable=True), old)) == [
        'type: Invalid value: "example.com/other": field is immutable',
        "data: Forbidden: field is immutable when `immutable` is set"]
    assert SECRETS.field_values(old)["type"] == "Opaque"


def test_table_rows_count_keys():
    import datetime
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    meta = {"name": "x", "creationTimestamp": "2025-12-31T23:59:00Z"}
    assert configmap_row({"metadata": meta, "data": {"a": "1"}, "binaryData": {"b": "AA=="}}, now).cells == ["x", 2, "60s"]
    assert secret_row({"metadata": meta, "type": "Opaque", "data": {"a": "AA=="}}, now).cells == ["x", "Opaque", 1, "60s"]


def _field(number, payload):
    def varint(value):
        out = bytearray()
        while True:
            byte, value = value & 0x7F, value >> 7
            out.append(byte | (0x80 if value else 0))
            if not value:
                return bytes(out)
    if isinstance(payload, int):
        return varint(number << 3) + varint(payload)
    data = payload.encode() if isinstance(payload, str) else payload
    return varint(number << 3 | 2) + varint(len(data)) + data


def test_protobuf_secret_and_configmap_as_kubectl_create_sends_them():
    meta = _field(1, "s") + _field(2, "") + _field(7, 0)
    raw = _field(1, meta) + _field(2, _field(1, "u") + _field(2, b"\x00admin")) + _field(3, "")
    body = MAGIC + _field(1, _field(1, "v1") + _field(2, "Secret")) + _field(2, raw)
    assert decode_object(body) == {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                                   "data": {"u": base64.b64encode(b"\x00admin").decode()}}
    raw = _field(1, _field(1, "c")) + _field(2, _field(1, "k") + _field(2, "")) + _field(4, 1)
    body = MAGIC + _field(1, _field(1, "v1") + _field(2, "ConfigMap")) + _field(2, raw)
    assert decode_object(body) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                                   "data": {"k": ""}, "immutable": True}
