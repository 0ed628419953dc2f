"""core/v1 ServiceAccounts (short name `sa`) and the TokenRequest their `token` subresource takes
(authentication.k8s.io/v1): defaulting and validation as upstream's, kubectl's `NAME SECRETS AGE` table."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from apiserver import errors
from apiserver.auth.service_accounts import (DEFAULT_EXPIRATION_SECONDS, MAX_EXPIRATION_SECONDS,
                                             MIN_EXPIRATION_SECONDS)
from apiserver.errors import FieldError, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age

SERVICE_ACCOUNT_INFO = ResourceInfo("", "v1", "ServiceAccount", "serviceaccounts", "serviceaccount", True,
                                    short_names=("sa",), subresources=("token",))
TOKEN_REQUEST_GROUP = "authentication.k8s.io"
TOKEN_REQUEST_API_VERSION = f"{TOKEN_REQUEST_GROUP}/v1"
BOUND_KINDS = ("Pod", "Secret", "Node")

COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Secrets", "string", "", "Secrets is a list of the secrets in the same namespace that pods running "
           "using this ServiceAccount are allowed to use."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def _references(value: Any, path: str) -> list[FieldError]:
    if value is None:
        return []
    if not isinstance(value, list):
        return [invalid(path, value, "must be a list")]
    return [invalid(f"{path}[{i}]", item, "must be an object") for i, item in enumerate(value)
            if not isinstance(item, dict)]


@dataclass
class ServiceAccountStrategy(Strategy):
    info: ResourceInfo = SERVICE_ACCOUNT_INFO
    tracks_generation: bool = False

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        problems += _references(obj.get("secrets"), "secrets")
        problems += _references(obj.get("imagePullSecrets"), "imagePullSecrets")
        automount = obj.get("automountServiceAccountToken")
        if automount is not None and not isinstance(automount, bool):
            problems.append(invalid("automountServiceAccountToken", automount, "must be a boolean"))
        return problems

    def table(self, now: datetime.datetime) -> TableSpec:
        def row(account: Obj) -> Row:
            meta = account["metadata"]
            return Row([meta["name"], len(account.get("secrets") or []), age(meta.get("creationTimestamp"), now)])
        return TableSpec(columns=COLUMNS, row=row)


def token_request(body: Any, namespace: str, name: str) -> Obj:
    """The TokenRequest of a `serviceaccounts/<name>/token` create, defaulted (expirationSeconds 3600) and
    validated as upstream's (audiences are defaulted later, to the API's); APIError when it is not one."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a TokenRequest object")
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if (kind and kind != "TokenRequest") or (api_version and api_version != TOKEN_REQUEST_API_VERSION):
        raise errors.bad_request(f"the body of the request was of kind {api_version}/{kind}, expected "
                                 f"{TOKEN_REQUEST_API_VERSION}/TokenRequest")
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("the name of the object does not match the name on the URL")
    if meta.get("namespace") and meta["namespace"] != namespace:
        raise errors.bad_request("the namespace of the provided object does not match the namespace sent on the "
                                 "request")
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    problems: list[FieldError] = []
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        problems.append(invalid("spec.audiences", audiences, "must be a list of strings"))
        audiences = []
    expiration = spec.get("expirationSeconds")
    if expiration is None:
        expiration = DEFAULT_EXPIRATION_SECONDS
    if not isinstance(expiration, int) or isinstance(expiration, bool):
        problems.append(invalid("spec.expirationSeconds", expiration, "must be an integer"))
        expiration = DEFAULT_EXPIRATION_SECONDS
    elif expiration < MIN_EXPIRATION_SECONDS:
        problems.append(invalid("spec.expirationSeconds", expiration, "may not specify a duration less than 10 minutes"))
    elif expiration > MAX_EXPIRATION_SECONDS:
        problems.append(invalid("spec.expirationSeconds", expiration, "may not specify a duration larger than 2^32 "
                                                                       "seconds"))
    ref = spec.get("boundObjectRef")
    if ref is not None:
        if not isinstance(ref, dict):
            problems.append(invalid("spec.boundObjectRef", ref, "must be an object"))
            ref = None
        else:
            if ref.get("kind") not in BOUND_KINDS:
                problems.append(not_supported("spec.boundObjectRef.kind", ref.get("kind", ""), list(BOUND_KINDS)))
            if not ref.get("name"):
                problems.append(required("spec.boundObjectRef.name"))
            if ref.get("apiVersion") not in (None, "", "v1"):
                problems.append(not_supported("spec.boundObjectRef.apiVersion", ref.get("apiVersion"), ["v1"]))
    if problems:
        raise errors.invalid_object(TOKEN_REQUEST_GROUP, "TokenRequest", name, problems)
    out_spec: Obj = {"audiences": list(audiences), "expirationSeconds": expiration}
    if ref is not None:
        out_spec["boundObjectRef"] = {k: ref[k] for k in ("kind", "apiVersion", "name", "uid") if ref.get(k)}
        out_spec["boundObjectRef"].setdefault("apiVersion", "v1")
    return {"kind": "TokenRequest", "apiVersion": TOKEN_REQUEST_API_VERSION,
            "metadata": {"name": name, "namespace": namespace}, "spec": out_spec}
