"""Admission webhooks, the pure part: which webhooks a request matches (rules, scope, matchPolicy, namespace
and object selectors), the AdmissionReview v1 request sent, and what a response means (upstream's checks
and messages: k8s.io/apiserver's admission/plugin/webhook)."""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping

from apiserver import errors
from apiserver.auth.user import UserInfo
from shipmate.selectors import SelectorError, label_selector_from_dict

Obj = dict[str, Any]
EXEMPT_KINDS = frozenset({"ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                          "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding", "MutatingAdmissionPolicy",
                          "MutatingAdmissionPolicyBinding"})
ADMISSION_GROUP = "admissionregistration.k8s.io"


def is_exempt(group: str, kind: str) -> bool:
    """Admission configuration objects never reach webhooks: a webhook cannot intercept its own deletion."""
    return group == ADMISSION_GROUP and kind in EXEMPT_KINDS


@dataclass(frozen=True)
class Target:
    """The resource a request is for, as a rule sees it."""
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    operation: str

    @property
    def is_namespace(self) -> bool:
        return (self.group, self.version, self.resource) == ("", "v1", "namespaces")


@dataclass
class Webhook:
    """One webhook of a configuration."""
    configuration: str
    spec: Obj
    mutating: bool
    index: int = 0
    uid: str = field(default="")

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def timeout(self) -> int:
        value = self.spec.get("timeoutSeconds", 10)
        return value if isinstance(value, int) and 1 <= value <= 30 else 10

    @property
    def fail_open(self) -> bool:
        return self.spec.get("failurePolicy") == "Ignore"


def _any(items: Any, requested: str) -> bool:
    return isinstance(items, list) and ("*" in items or requested in items)


def rule_matches(rule: Obj, target: Target) -> bool:
    scope = rule.get("scope") or "*"
    if scope == "Namespaced" and (target.is_namespace or not target.namespace):
        return False
    if scope == "Cluster" and not (target.is_namespace or not target.namespace):
        return False
    if scope not in ("*", "Namespaced", "Cluster"):
        return False
    if not _any(rule.get("operations"), target.operation):
        return False
    if not _any(rule.get("apiGroups"), target.group) or not _any(rule.get("apiVersions"), target.version):
        return False
    for entry in rule.get("resources") or []:
        res, _, sub = str(entry).partition("/")
        if (res == "*" or res == target.resource) and (sub == "*" or sub == target.subresource):
            return True
    return False


def matching_target(hook: Webhook, target: Target, equivalents: list[Target]) -> Target | None:
    """The resource the webhook is called for: the request's own when a rule matches it, else (matchPolicy
    Equivalent) an equivalent one a rule matches (another version of the same resource)."""
    rules = [r for r in hook.spec.get("rules") or [] if isinstance(r, dict)]
    if any(rule_matches(rule, target) for rule in rules):
        return target
    if hook.spec.get("matchPolicy", "Equivalent") == "Equivalent":
        for other in equivalents:
            if any(rule_matches(rule, other) for rule in rules):
                return other
    return None


def selector_matches(selector: Any, labels: Mapping[str, str] | None) -> bool:
    if not selector:
        return True
    try:
        return label_selector_from_dict(selector).matches(labels or {})
    except SelectorError:
        return False


def labels_of(obj: Obj | None) -> dict[str, str]:
    labels = ((obj or {}).get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def object_selected(hook: Webhook, obj: Obj | None, old: Obj | None) -> bool:
    selector = hook.spec.get("objectSelector")
    if not selector:
        return True
    return (obj is not None and selector_matches(selector, labels_of(obj))) or \
        (old is not None and selector_matches(selector, labels_of(old)))


# --- the AdmissionReview --------------------------------------------------------------------------------
OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


def review_request(hook_target: Target, request_target: Target, name: str, user: UserInfo | None,
                   obj: Obj | None, old: Obj | None, dry_run: bool, field_manager: str = "") -> Obj:
    """AdmissionReview v1 request, as upstream's CreateV1AdmissionReview builds it."""
    options: Obj | None = None
    if request_target.operation in OPTIONS_KIND:
        options = {"kind": OPTIONS_KIND[request_target.operation], "apiVersion": "meta.k8s.io/v1"}
        if field_manager and request_target.operation != "DELETE":
            options["fieldManager"] = field_manager
    user_info: Obj = {"username": user.name if user else "system:apiserver"}
    if user and user.uid:
        user_info["uid"] = user.uid
    groups = list(user.groups) if user else ["system:masters"]
    if groups:
        user_info["groups"] = groups
    if user and user.extra:
        user_info["extra"] = {key: list(values) for key, values in user.extra.items()}
    request: Obj = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": hook_target.group, "version": hook_target.version, "kind": hook_target.kind},
        "resource": {"group": hook_target.group, "version": hook_target.version, "resource": hook_target.resource},
        "requestKind": {"group": request_target.group, "version": request_target.version,
                        "kind": request_target.kind},
        "requestResource": {"group": request_target.group, "version": request_target.version,
                            "resource": request_target.resource},
        "name": name, "operation": request_target.operation, "userInfo": user_info,
        "object": _as_version(obj, hook_target), "oldObject": _as_version(old, hook_target), "dryRun": dry_run,
        "options": options,
    }
    if hook_target.subresource:
        request["subResource"] = hook_target.subresource
    if request_target.subresource:
        request["requestSubResource"] = request_target.subresource
    if request_target.namespace:
        request["namespace"] = request_target.namespace
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _as_version(obj: Obj | None, target: Target) -> Obj | None:
    """The object as the version the webhook asked for (custom resources convert with `None`: apiVersion)."""
    if obj is None:
        return None
    if obj.get("apiVersion") and "/" in str(obj["apiVersion"]) and target.group:
        return {**obj, "apiVersion": f"{target.group}/{target.version}"}
    return obj


class CallError(Exception):
    """The webhook could not be called or answered nonsense: failurePolicy decides (upstream's
    ErrCallingWebhook)."""

    def __init__(self, webhook: str, reason: str):
        super().__init__(f'failed calling webhook "{webhook}": {reason}')
        self.webhook, self.reason = webhook, reason


@dataclass
class Verdict:
    allowed: bool
    patch: list | None = None
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    status: Obj | None = None


def parse_response(webhook: str, uid: str, review: Any, mutating: bool) -> Verdict:
    """VerifyAdmissionResponse (v1): the response must be an AdmissionReview v1 answering this uid; only
    mutating webhooks may patch, with JSONPatch. Raises CallError with upstream's reasons."""
    def bad(reason: str) -> CallError:
        return CallError(webhook, f"received invalid webhook response: {reason}")
    if not isinstance(review, dict):
        raise bad("unexpected response type")
    response = review.get("response")
    if not isinstance(response, dict):
        raise bad("webhook response was absent")
    if response.get("uid") != uid:
        raise bad(f'expected response.uid="{uid}", got "{response.get("uid", "")}"')
    if review.get("apiVersion") != "admission.k8s.io/v1" or review.get("kind") != "AdmissionReview":
        got = review.get("apiVersion", "")
        version = got.rpartition("/")[2] if got else ""
        group = got.rpartition("/")[0] if "/" in got else ""
        raise bad(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
                  f"{group + '/' if group else ''}{version}, Kind={review.get('kind', '')}")
    patch_b64, patch_type = response.get("patch"), response.get("patchType")
    patch = None
    if mutating:
        if patch_b64 and patch_type is None:
            raise bad("webhook returned response.patch but not response.patchType")
        if not patch_b64 and patch_type is not None:
            raise bad("webhook returned response.patchType but not response.patch")
        if patch_type is not None and not patch_type:
            raise bad(f'webhook returned invalid response.patchType of "{patch_type}"')
        if patch_b64:
            if patch_type != "JSONPatch":
                raise CallError(webhook, f'unsupported patch type "{patch_type}"')
            try:
                patch = json.loads(base64.b64decode(patch_b64, validate=True))
            except (binascii.Error, ValueError, TypeError) as exc:
                raise CallError(webhook, f"received undecodable patch in webhook response: {exc}") from None
            if not isinstance(patch, list):
                raise CallError(webhook, "received undecodable patch in webhook response: json: cannot unmarshal "
                                         "object into Go value of type jsonpatch.Patch")
    else:
        if patch_b64:
            raise bad("validating webhook may not return response.patch")
        if patch_type is not None:
            raise bad("validating webhook may not return response.patchType")
    warnings = [str(w) for w in response.get("warnings") or [] if isinstance(w, str)]
    annotations = response.get("auditAnnotations") if isinstance(response.get("auditAnnotations"), dict) else {}
    status = response.get("status") if isinstance(response.get("status"), dict) else None
    return Verdict(bool(response.get("allowed")), patch, warnings, {str(k): str(v) for k, v in annotations.items()},
                   status)


def denial(webhook: str, status: Obj | None) -> errors.APIError:
    """ToStatusErr: the rejection as the client sees it."""
    status = dict(status or {})
    code = status.get("code") if isinstance(status.get("code"), int) else 0
    if code < 400:
        code = 400
    denied = f'admission webhook "{webhook}" denied the request'
    if status.get("message"):
        message = f"{denied}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied}: {status['reason']}"
    else:
        message = f"{denied} without explanation"
    reason = status.get("reason") or ""
    return errors.APIError(code, str(reason), message, status.get("details") if isinstance(status.get("details"),
                                                                                          dict) else None)
