"""apiregistration.k8s.io/v1 APIService: stored and served with upstream's validation and columns. Local
APIServices (no service: the group-version is served by this server) are kept for every served group-version by
the APIService controller; aggregation (proxying to an extension API server behind `spec.service`) is not
implemented: such APIServices are stored and reported Available False."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from apiserver import errors
from apiserver.errors import FieldError
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import (dns1035_label, dns1123_subdomain, path_segment_name, validate_meta_update,
                                  validate_object_meta)
from apiserver.webhook_rules import ca_bundle_errors

APISERVICE_INFO = ResourceInfo("apiregistration.k8s.io", "v1", "APIService", "apiservices", "apiservice", False,
                               categories=("api-extensions",), subresources=("status",))


def _name_problems(obj: Obj):
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}

    def check(name: str) -> list[str]:
        problems = path_segment_name(name)
        if name != f"{spec.get('version', '')}.{spec.get('group', '')}":
            problems.append('must be `spec.version+"."+spec.group`')
        return problems
    return check


@dataclass
class APIServiceStrategy(Strategy):
    info: ResourceInfo = APISERVICE_INFO
    has_status: bool = True

    def default(self, obj: Obj) -> None:
        service = (obj.get("spec") or {}).get("service") if isinstance(obj.get("spec"), dict) else None
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443

    def validate(self, obj: Obj) -> list[FieldError]:
        found = validate_object_meta(obj, False, _name_problems(obj))
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        group, version = spec.get("group", ""), spec.get("version", "")
        if not version:
            found.append(errors.required("spec.version"))
        else:
            found += [errors.invalid("spec.version", version, p) for p in dns1035_label(str(version))]
        if group:
            found += [errors.invalid("spec.group", group, p) for p in dns1123_subdomain(str(group))]
        minimum, priority = spec.get("groupPriorityMinimum", 0), spec.get("versionPriority", 0)
        if not isinstance(minimum, int) or not 0 < minimum <= 20000:
            found.append(errors.invalid("spec.groupPriorityMinimum", minimum,
                                        "must be positive and less than 20000"))
        if not isinstance(priority, int) or not 0 < priority <= 1000:
            found.append(errors.invalid("spec.versionPriority", priority, "must be positive and less than 1000"))
        service = spec.get("service")
        if service is None:
            if spec.get("caBundle"):
                found.append(errors.invalid("spec.caBundle", "<value omitted>", "local APIServices may not have "
                                                                                "a caBundle"))
            if spec.get("insecureSkipTLSVerify"):
                found.append(errors.invalid("spec.insecureSkipTLSVerify", True,
                                            "local APIServices may not have insecureSkipTLSVerify"))
        elif isinstance(service, dict):
            if not service.get("name"):
                found.append(errors.required("spec.service.name"))
            if not service.get("namespace"):
                found.append(errors.required("spec.service.namespace"))
            port = service.get("port")
            if not isinstance(port, int) or not 1 <= port <= 65535:
                found.append(errors.invalid("spec.service.port", port, "port is not valid: must be between 1 and "
                                                                       "65535, inclusive"))
        if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
            found.append(errors.invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is "
                                                                            "present"))
        found += ca_bundle_errors("spec.caBundle", spec.get("caBundle"))
        return found

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new) + validate_meta_update(new, old)

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")

    def table(self, now: datetime.datetime) -> TableSpec:
        columns = [Column("Name", "string", "name", NAME_DESCRIPTION),
                   Column("Service", "string", "", "The reference to the service that hosts this API endpoint."),
                   Column("Available", "string", "", "Whether this service is available."),
                   Column("Age", "string", "", AGE_DESCRIPTION)]

        def row(obj: Obj) -> Row:
            service = (obj.get("spec") or {}).get("service")
            where = f"{service.get('namespace')}/{service.get('name')}" if isinstance(service, dict) else "Local"
            available = next((c for c in (obj.get("status") or {}).get("conditions") or []
                              if c.get("type") == "Available"), None)
            text = "Unknown"
            if available:
                text = available.get("status", "Unknown")
                if available.get("status") != "True" and available.get("reason"):
                    text = f"{text} ({available['reason']})"
            return Row([obj["metadata"]["name"], where, text, age(obj["metadata"].get("creationTimestamp"), now)])
        return TableSpec(columns, row)
