"""core/v1 ConfigMaps and Secrets: key names, sizes, base64 data, `stringData`, `immutable`, Secret types."""
from __future__ import annotations

import base64
import binascii
import datetime
import json
import re
from dataclasses import dataclass, field
from typing import Any

from apiserver import errors, printers
from apiserver.errors import FieldError, forbidden, invalid, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import TableSpec

CONFIGMAP_INFO = ResourceInfo("", "v1", "ConfigMap", "configmaps", "configmap", True, short_names=("cm",))
SECRET_INFO = ResourceInfo("", "v1", "Secret", "secrets", "secret", True)

MAX_SIZE = 1024 * 1024  # upstream's MaxSecretSize, also the ConfigMap limit
_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
_IMMUTABLE = "field is immutable when `immutable` is set"

SECRET_TYPE_OPAQUE = "Opaque"
# type -> keys that must be present in data (upstream's ValidateSecret per-type rules)
_REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


def config_key_problems(key: str) -> list[str]:
    """upstream's IsConfigMapKey."""
    problems = []
    if len(key) > 253:
        problems.append("must be no more than 253 characters")
    if not _KEY_RE.match(key):
        problems.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. "
                        "'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                        "'[-._a-zA-Z0-9]+')")
    if key == ".":
        problems.append("must not be '.'")
    elif key == "..":
        problems.append("must not be '..'")
    elif key.startswith(".."):
        problems.append("must not start with '..'")
    return problems


def _validate_keys(data: Any, path: str) -> list[FieldError]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [invalid(path, data, "must be a map")]
    problems = []
    for key in data:
        problems += [invalid(f"{path}[{key}]", key, p) for p in config_key_problems(key)]
    return problems


def _too_long(path: str) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"may not be more than {MAX_SIZE} bytes")


def _immutability(new: Obj, old: Obj, fields: tuple[str, ...]) -> list[FieldError]:
    if old.get("immutable") is not True:
        return []
    problems = [forbidden(name, _IMMUTABLE) for name in fields if (new.get(name) or {}) != (old.get(name) or {})]
    if new.get("immutable") is not True:
        problems.append(forbidden("immutable", _IMMUTABLE))
    return problems


@dataclass
class ConfigMapStrategy(Strategy):
    info: ResourceInfo = CONFIGMAP_INFO
    tracks_generation: bool = False

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        data, binary = obj.get("data"), obj.get("binaryData")
        problems += _validate_keys(data, "data") + _validate_keys(binary, "binaryData")
        size = 0
        for key, value in (data or {}).items() if isinstance(data, dict) else ():
            if not isinstance(value, str):
                problems.append(invalid(f"data[{key}]", value, "must be a string"))
                continue
            size += len(value.encode())
            if isinstance(binary, dict) and key in binary:
                problems.append(invalid(f"data[{key}]", key, "duplicate of key present in binaryData"))
        for key, value in (binary or {}).items() if isinstance(binary, dict) else ():
            decoded = _decode_base64(value)
            if decoded is None:
                problems.append(invalid(f"binaryData[{key}]", value, "must be base64-encoded bytes"))
            else:
                size += len(decoded)
        if size > MAX_SIZE:
            problems.append(_too_long(""))
        return problems

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return super().validate_update(new, old) + _immutability(new, old, ("data", "binaryData"))

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.CONFIGMAP_COLUMNS, printers.configmap_row, now)


def _decode_base64(value: Any) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        # Go's StdEncoding skips \r and \n; everything else must be canonical, padded base64.
        return base64.b64decode(value.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _base64_error(kind: str, value: Any) -> errors.APIError:
    """Upstream fails decoding (400) when a []byte field is not base64, before any validation."""
    text = (value if isinstance(value, str) else json.dumps(value)).replace("\r", "").replace("\n", "")
    # Go reports the first byte that is not base64, or where a short final quantum starts.
    position = next((i for i, char in enumerate(text) if not (char.isascii() and (char.isalnum() or char in "+/="))),
                    len(text) - len(text) % 4)
    return errors.bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: illegal base64 data at '
                              f"input byte {position}")


@dataclass
class SecretStrategy(Strategy):
    info: ResourceInfo = SECRET_INFO
    tracks_generation: bool = False
    field_labels: tuple[str, ...] = field(default=("metadata.name", "metadata.namespace", "type"))

    def default(self, obj: Obj) -> None:
        if not obj.get("type"):
            obj["type"] = SECRET_TYPE_OPAQUE
        data = obj.get("data")
        if isinstance(data, dict):
            for value in data.values():
                if value is not None and _decode_base64(value) is None:
                    raise _base64_error("Secret", value)
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict) and string_data:
            # As upstream's conversion: stringData is write-only and overwrites data's keys.
            merged = dict(data) if isinstance(data, dict) else {}
            for key, value in string_data.items():
                if not isinstance(value, str):
                    raise errors.bad_request('Secret in version "v1" cannot be handled as a Secret: '
                                             f"stringData[{key}] must be a string")
                merged[key] = base64.b64encode(value.encode()).decode()
            obj["data"] = merged

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        data = obj.get("data")
        problems += _validate_keys(data, "data")
        decoded: dict[str, bytes] = {}
        if isinstance(data, dict):
            for key, value in data.items():
                decoded[key] = (_decode_base64(value) or b"") if value is not None else b""
        if sum(len(v) for v in decoded.values()) > MAX_SIZE:
            problems.append(_too_long("data"))
        secret_type = obj.get("type") or ""
        for key in _REQUIRED_KEYS.get(secret_type, ()):
            if key not in decoded:
                problems.append(required(f"data[{key}]"))
        if secret_type == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" in decoded:
            try:
                json.loads(decoded[".dockerconfigjson"])
            except ValueError as exc:
                problems.append(invalid("data[.dockerconfigjson]", "<secret contents redacted>", str(exc)))
        if secret_type == "kubernetes.io/basic-auth" and not ({"username", "password"} & set(decoded)):
            problems.append(required("data[username]"))
            problems.append(required("data[password]"))
        if secret_type == "kubernetes.io/service-account-token":
            annotations = (obj.get("metadata") or {}).get("annotations") or {}
            if not annotations.get("kubernetes.io/service-account.name"):
                problems.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
        return problems

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = super().validate_update(new, old)
        if (new.get("type") or SECRET_TYPE_OPAQUE) != (old.get("type") or SECRET_TYPE_OPAQUE):
            problems.append(invalid("type", new.get("type"), "field is immutable"))
        return problems + _immutability(new, old, ("data",))

    def field_values(self, obj: Obj) -> dict[str, str]:
        values = super().field_values(obj)
        values["type"] = obj.get("type", "")
        return values

    def table(self, now: datetime.datetime) -> TableSpec:
        return printers.spec_for(printers.SECRET_COLUMNS, printers.secret_row, now)
