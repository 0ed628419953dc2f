"""API errors rendered as upstream-shaped metav1.Status objects."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One validation failure, like apimachinery's field.Error."""
    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueForbidden, ...
    field: str
    detail: str = ""
    bad_value: Any = None

    _TYPES = {
        "FieldValueRequired": "Required value",
        "FieldValueInvalid": "Invalid value",
        "FieldValueForbidden": "Forbidden",
        "FieldValueDuplicate": "Duplicate value",
        "FieldValueNotSupported": "Unsupported value",
        "FieldValueTooLong": "Too long",
        "FieldValueTooMany": "Too many",
        "FieldValueTypeInvalid": "Invalid value",
    }

    def message(self) -> str:
        kind = self._TYPES.get(self.reason, self.reason)
        if self.reason in ("FieldValueInvalid", "FieldValueDuplicate", "FieldValueNotSupported",
                           "FieldValueTypeInvalid") or (self.reason == "FieldValueTooMany" and self.bad_value is not None):
            text = f"{kind}: {_format_bad_value(self.bad_value)}"
        else:
            text = kind
        return f"{text}: {self.detail}" if self.detail else text


class GoLiteral(str):
    """A bad value already in Go's %#v form (e.g. a struct literal), printed as is."""


def _format_bad_value(value: Any) -> str:
    if isinstance(value, GoLiteral):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "[]string{" + ", ".join(f'"{v}"' for v in value) + "}"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def required(path: str, detail: str = "") -> FieldError:
    return FieldError("FieldValueRequired", path, detail)


def invalid(path: str, value: Any, detail: str = "") -> FieldError:
    return FieldError("FieldValueInvalid", path, detail, value)


def forbidden(path: str, detail: str) -> FieldError:
    return FieldError("FieldValueForbidden", path, detail)


def duplicate(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueDuplicate", path, "", value)


def not_supported(path: str, value: Any, supported: list[str]) -> FieldError:
    detail = "supported values: " + ", ".join(f'"{s}"' for s in supported)
    return FieldError("FieldValueNotSupported", path, detail, value)


@dataclass
class APIError(Exception):
    code: int
    reason: str
    message: str
    details: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    list_meta: dict[str, Any] = field(default_factory=dict)  # the Status's metadata (e.g. a continue token)

    def __str__(self) -> str:
        return self.message

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": dict(self.list_meta),
                                "status": "Failure", "message": self.message, "reason": self.reason}
        if self.details is not None:
            body["details"] = self.details
        body["code"] = self.code  # upstream's field order: clients compare the encoded Status
        return body


def _details(name: str, group: str, plural: str) -> dict[str, Any]:
    """StatusDetails in upstream's field order (name, group, kind): clients compare the encoded Status."""
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details["kind"] = plural
    return details


def _qualified(group: str, plural: str) -> str:
    return f"{plural}.{group}" if group else plural


def not_found(group: str, plural: str, name: str) -> APIError:
    return APIError(404, "NotFound", f'{_qualified(group, plural)} "{name}" not found',
                    _details(name, group, plural))


def already_exists(group: str, plural: str, name: str) -> APIError:
    return APIError(409, "AlreadyExists", f'{_qualified(group, plural)} "{name}" already exists',
                    _details(name, group, plural))


def conflict(group: str, plural: str, name: str, why: str) -> APIError:
    return APIError(409, "Conflict",
                    f'Operation cannot be fulfilled on {_qualified(group, plural)} "{name}": {why}',
                    _details(name, group, plural))


STALE_OBJECT = "the object has been modified; please apply your changes to the latest version and try again"


def invalid_object(group: str, kind: str, name: str, errors: list[FieldError]) -> APIError:
    causes = [{"reason": e.reason, "message": e.message(), "field": e.field} for e in errors]
    summary = ", ".join(f"{e.field}: {e.message()}" for e in errors)
    if len(errors) > 1:
        summary = f"[{summary}]"
    qualified_kind = f"{kind}.{group}" if group else kind
    details: dict[str, Any] = {"name": name}
    if group:
        details["group"] = group
    details.update({"kind": kind, "causes": causes})
    return APIError(422, "Invalid", f'{qualified_kind} "{name}" is invalid: {summary}', details)


def bad_request(message: str) -> APIError:
    return APIError(400, "BadRequest", message)


def forbidden_error(group: str, plural: str, name: str, why: str) -> APIError:
    target = f'{_qualified(group, plural)} "{name}"' if name else _qualified(group, plural)
    return APIError(403, "Forbidden", f"{target} is forbidden: {why}", _details(name, group, plural))


def method_not_allowed(verb: str, plural: str) -> APIError:
    return APIError(405, "MethodNotAllowed", "the server does not allow this method on the requested resource",
                    {"kind": plural})


def unsupported_media_type(accepted: list[str]) -> APIError:
    return APIError(415, "UnsupportedMediaType", "the body of the request was in an unknown format - "
                    "accepted media types include: " + ", ".join(accepted))


def gone(message: str) -> APIError:
    return APIError(410, "Expired", message)


def internal_error(message: str) -> APIError:
    return APIError(500, "InternalError", f"Internal error occurred: {message}")
