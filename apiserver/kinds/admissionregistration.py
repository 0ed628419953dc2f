"""admissionregistration.k8s.io/v1 ValidatingWebhookConfiguration and MutatingWebhookConfiguration: upstream's
defaults (failurePolicy Fail, matchPolicy Equivalent, empty selectors, timeoutSeconds 10, rule scope "*",
service port 443, reinvocationPolicy Never) and validation messages. The admission plugins that call the
webhooks are apiserver/admission/webhooks.py."""
from __future__ import annotations

import datetime
from dataclasses import dataclass

from apiserver import errors
from apiserver.errors import FieldError, GoLiteral
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import validate_label_selector
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1035_label, dns1123_subdomain
from apiserver.webhook_rules import client_config_errors

GROUP = "admissionregistration.k8s.io"
VALIDATING_INFO = ResourceInfo(GROUP, "v1", "ValidatingWebhookConfiguration", "validatingwebhookconfigurations",
                               "validatingwebhookconfiguration", False, categories=("api-extensions",))
MUTATING_INFO = ResourceInfo(GROUP, "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
                             "mutatingwebhookconfiguration", False, categories=("api-extensions",))
OPERATIONS = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]
MAX_TIMEOUT_SECONDS = 30  # upstream's bound; the default is 10


def _go_strings(values: list) -> GoLiteral:
    return GoLiteral("[]string{" + ", ".join(f'"{v}"' for v in values) + "}")


def default_webhook(hook: Obj, mutating: bool) -> None:
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    if hook.get("namespaceSelector") is None:
        hook["namespaceSelector"] = {}
    if hook.get("objectSelector") is None:
        hook["objectSelector"] = {}
    hook.setdefault("timeoutSeconds", 10)
    if mutating:
        hook.setdefault("reinvocationPolicy", "Never")
    for rule in hook.get("rules") or []:
        if isinstance(rule, dict):
            rule.setdefault("scope", "*")
    service = (hook.get("clientConfig") or {}).get("service") if isinstance(hook.get("clientConfig"), dict) else None
    if isinstance(service, dict) and service.get("port") is None:
        service["port"] = 443


def _rule_errors(rule: Obj, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    operations = rule.get("operations") or []
    if not operations:
        found.append(errors.required(f"{path}.operations"))
    if len(operations) > 1 and "*" in operations:
        found.append(errors.invalid(f"{path}.operations", _go_strings(operations),
                                    "if '*' is present, must not specify other operations"))
    for index, operation in enumerate(operations):
        if operation not in OPERATIONS:
            found.append(errors.not_supported(f"{path}.operations[{index}]", operation, OPERATIONS))
    for key in ("apiGroups", "apiVersions"):
        values = rule.get(key) or []
        if not values:
            found.append(errors.required(f"{path}.{key}"))
        if len(values) > 1 and "*" in values:
            found.append(errors.invalid(f"{path}.{key}", _go_strings(values), "if '*' is present, must not specify "
                                                                              "other " + key[3:].lower()))
        if key == "apiVersions":
            for index, value in enumerate(values):
                if not value:
                    found.append(errors.required(f"{path}.{key}[{index}]"))
    resources = rule.get("resources") or []
    if not resources:
        found.append(errors.required(f"{path}.resources"))
    found += _resource_errors(resources, f"{path}.resources")
    scope = rule.get("scope")
    if scope is not None and scope not in ("*", "Cluster", "Namespaced"):
        found.append(errors.not_supported(f"{path}.scope", scope, ["*", "Cluster", "Namespaced"]))
    return found


def _resource_errors(resources: list, path: str) -> list[FieldError]:
    found: list[FieldError] = []
    if "*/*" in resources and len(resources) > 1:
        return [errors.invalid(path, _go_strings(resources), "if '*/*' is present, must not specify other resources")]
    wildcard_subs = {r.split("/", 1)[0] for r in resources if r.endswith("/*")}
    wildcard_res = {r.split("/", 1)[1] for r in resources if r.startswith("*/") and "/" in r}
    for index, resource in enumerate(resources):
        if not resource:
            found.append(errors.required(f"{path}[{index}]"))
            continue
        res, _, sub = resource.partition("/")
        if resource == "*" or resource == "*/*":
            continue
        if "*" in resources and not sub:
            found.append(errors.invalid(f"{path}[{index}]", resource, "if '*' is present, must not specify other "
                                                                      "resources without subresources"))
        if sub and sub != "*" and res in wildcard_subs:
            found.append(errors.invalid(f"{path}[{index}]", resource, f"if '{res}/*' is present, must not specify "
                                                                      f"{resource}"))
        if res != "*" and sub and sub in wildcard_res:
            found.append(errors.invalid(f"{path}[{index}]", resource, f"if '*/{sub}' is present, must not specify "
                                                                      f"{resource}"))
    return found


def _webhook_errors(hook: Obj, path: str, mutating: bool) -> list[FieldError]:
    found: list[FieldError] = []
    name = hook.get("name")
    if not name:
        found.append(errors.required(f"{path}.name"))
    else:
        found += [errors.invalid(f"{path}.name", name, p) for p in dns1123_subdomain(str(name))]
        if len(str(name).split(".")) < 3:
            found.append(errors.invalid(f"{path}.name", name, "should be a domain with at least three segments "
                                                              "separated by dots"))
    for index, rule in enumerate(hook.get("rules") or []):
        if isinstance(rule, dict):
            found += _rule_errors(rule, f"{path}.rules[{index}]")
    if hook.get("failurePolicy") not in ("Fail", "Ignore"):
        found.append(errors.not_supported(f"{path}.failurePolicy", hook.get("failurePolicy"), ["Fail", "Ignore"]))
    if hook.get("matchPolicy") not in ("Equivalent", "Exact"):
        found.append(errors.not_supported(f"{path}.matchPolicy", hook.get("matchPolicy"), ["Equivalent", "Exact"]))
    side_effects = hook.get("sideEffects")
    if side_effects is None:
        found.append(errors.required(f"{path}.sideEffects", "must specify one of None, NoneOnDryRun"))
    elif side_effects not in ("None", "NoneOnDryRun"):
        found.append(errors.not_supported(f"{path}.sideEffects", side_effects, ["None", "NoneOnDryRun"]))
    timeout = hook.get("timeoutSeconds")
    if not isinstance(timeout, int) or isinstance(timeout, bool) or not 1 <= timeout <= MAX_TIMEOUT_SECONDS:
        found.append(errors.invalid(f"{path}.timeoutSeconds", timeout,
                                    f"the timeout value must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"))
    versions = hook.get("admissionReviewVersions") or []
    if not versions:
        found.append(errors.required(f"{path}.admissionReviewVersions", "must specify one of v1, v1beta1"))
    else:
        seen: set = set()
        for index, version in enumerate(versions):
            if version in seen:
                found.append(errors.invalid(f"{path}.admissionReviewVersions[{index}]", version, "duplicate version"))
                continue
            seen.add(version)
            found += [errors.invalid(f"{path}.admissionReviewVersions[{index}]", version, p)
                      for p in dns1035_label(str(version))]
        if not seen & {"v1", "v1beta1"}:
            found.append(errors.invalid(f"{path}.admissionReviewVersions", _go_strings(versions),
                                        "must include at least one of v1, v1beta1"))
    found += client_config_errors(f"{path}.clientConfig", hook.get("clientConfig"))
    for key in ("namespaceSelector", "objectSelector"):
        if hook.get(key):
            found += validate_label_selector(hook[key], f"{path}.{key}")
    if mutating and hook.get("reinvocationPolicy") not in ("IfNeeded", "Never"):
        found.append(errors.not_supported(f"{path}.reinvocationPolicy", hook.get("reinvocationPolicy"),
                                          ["IfNeeded", "Never"]))
    return found


@dataclass
class WebhookConfigurationStrategy(Strategy):
    info: ResourceInfo = VALIDATING_INFO
    mutating: bool = False

    def default(self, obj: Obj) -> None:
        for hook in obj.get("webhooks") or []:
            if isinstance(hook, dict):
                default_webhook(hook, self.mutating)

    def validate(self, obj: Obj) -> list[FieldError]:
        found = super().validate(obj)
        webhooks = obj.get("webhooks") or []
        names: set = set()
        for index, hook in enumerate(webhooks):
            path = f"webhooks[{index}]"
            if not isinstance(hook, dict):
                found.append(errors.invalid(path, hook, "must be an object"))
                continue
            found += _webhook_errors(hook, path, self.mutating)
            if hook.get("name") and hook["name"] in names:
                found.append(errors.duplicate(f"{path}.name", hook["name"]))
            names.add(hook.get("name"))
        return found

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("webhooks") != old.get("webhooks")

    def table(self, now: datetime.datetime) -> TableSpec:
        columns = [Column("Name", "string", "name", NAME_DESCRIPTION),
                   Column("Webhooks", "integer", "", "Webhooks indicates the number of webhooks in the configuration"),
                   Column("Age", "string", "", AGE_DESCRIPTION)]
        return TableSpec(columns, lambda obj: Row([obj["metadata"]["name"], len(obj.get("webhooks") or []),
                                                   age(obj["metadata"].get("creationTimestamp"), now)]))


def webhook_configuration_strategies() -> list[Strategy]:
    return [WebhookConfigurationStrategy(), WebhookConfigurationStrategy(MUTATING_INFO, mutating=True)]
