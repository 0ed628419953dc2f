"""rbac.authorization.k8s.io/v1 Roles, ClusterRoles and their bindings: defaulting, validation, tables."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Protocol

from apiserver.errors import FieldError, GoLiteral, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import NameValidator, dns1123_subdomain, path_segment_name
from shipmate.selectors import SelectorError, label_selector_from_dict

GROUP = "rbac.authorization.k8s.io"
ROLE_INFO = ResourceInfo(GROUP, "v1", "Role", "roles", "role", True)
CLUSTER_ROLE_INFO = ResourceInfo(GROUP, "v1", "ClusterRole", "clusterroles", "clusterrole", False)
ROLE_BINDING_INFO = ResourceInfo(GROUP, "v1", "RoleBinding", "rolebindings", "rolebinding", True)
CLUSTER_ROLE_BINDING_INFO = ResourceInfo(GROUP, "v1", "ClusterRoleBinding", "clusterrolebindings",
                                         "clusterrolebinding", False)

USER, GROUP_KIND, SERVICE_ACCOUNT = "User", "Group", "ServiceAccount"


def rbac_name(value: str) -> list[str]:
    """Upstream's ValidateRBACName: any path segment name (colons allowed: system:basic-user)."""
    return path_segment_name(value)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def validate_policy_rule(rule: Any, namespaced: bool, path: str) -> list[FieldError]:
    """Upstream's ValidatePolicyRule."""
    if not isinstance(rule, dict):
        return [invalid(path, rule, "must be an object")]
    problems = []
    if not rule.get("verbs"):
        problems.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = _strings(rule.get("nonResourceURLs"))
    if urls:
        if namespaced:
            problems.append(invalid(f"{path}.nonResourceURLs", urls, "namespaced rules cannot apply to "
                                    "non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            problems.append(invalid(f"{path}.nonResourceURLs", urls, "rules cannot apply to both regular "
                                    "resources and non-resource URLs"))
        return problems
    if not rule.get("apiGroups"):
        problems.append(required(f"{path}.apiGroups", "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        problems.append(required(f"{path}.resources", "resource rules must supply at least one resource"))
    return problems


def _validate_rules(obj: Obj, namespaced: bool) -> list[FieldError]:
    rules = obj.get("rules")
    if rules is None:
        return []
    if not isinstance(rules, list):
        return [invalid("rules", rules, "must be a list")]
    return [p for i, rule in enumerate(rules) for p in validate_policy_rule(rule, namespaced, f"rules[{i}]")]


def default_subjects(obj: Obj) -> None:
    """SetDefaults_Subject: User and Group subjects belong to the rbac API group."""
    for subject in obj.get("subjects") or []:
        if isinstance(subject, dict) and not subject.get("apiGroup") and subject.get("kind") in (USER, GROUP_KIND):
            subject["apiGroup"] = GROUP


def validate_subject(subject: Any, namespaced: bool, path: str) -> list[FieldError]:
    """Upstream's ValidateRoleBindingSubject."""
    if not isinstance(subject, dict):
        return [invalid(path, subject, "must be an object")]
    problems = []
    name, kind, api_group = subject.get("name") or "", subject.get("kind") or "", subject.get("apiGroup") or ""
    if not name:
        problems.append(required(f"{path}.name"))
    if kind == SERVICE_ACCOUNT:
        if name:
            problems += [invalid(f"{path}.name", name, p) for p in dns1123_subdomain(name)]
        if api_group:
            problems.append(not_supported(f"{path}.apiGroup", api_group, [""]))
        if not namespaced and not subject.get("namespace"):
            problems.append(required(f"{path}.namespace"))
    elif kind in (USER, GROUP_KIND):
        if api_group != GROUP:
            problems.append(not_supported(f"{path}.apiGroup", api_group, [GROUP]))
    else:
        problems.append(not_supported(f"{path}.kind", kind, [SERVICE_ACCOUNT, USER, GROUP_KIND]))
    return problems


def _go_role_ref(ref: Any) -> GoLiteral:
    ref = ref if isinstance(ref, dict) else {}
    return GoLiteral('rbac.RoleRef{APIGroup:"%s", Kind:"%s", Name:"%s"}' % (
        ref.get("apiGroup") or "", ref.get("kind") or "", ref.get("name") or ""))


def subjects_strings(subjects: Any) -> tuple[list[str], list[str], list[str]]:
    """Users, groups and service accounts (`namespace/name`) of a binding, for display."""
    users, groups, service_accounts = [], [], []
    for subject in subjects or []:
        if not isinstance(subject, dict):
            continue
        kind, name = subject.get("kind"), subject.get("name") or ""
        if kind == USER:
            users.append(name)
        elif kind == GROUP_KIND:
            groups.append(name)
        elif kind == SERVICE_ACCOUNT:
            service_accounts.append(f"{subject.get('namespace') or ''}/{name}")
    return users, groups, service_accounts


def _binding_columns(kind: str) -> list[Column]:
    noun = "roleBinding" if kind == "RoleBinding" else "clusterRoleBinding"
    return [Column("Name", "string", "name", NAME_DESCRIPTION),
            Column("Role", "string", "", "RoleRef can reference a Role in the current namespace or a ClusterRole in "
                   "the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. "
                   "This field is immutable." if kind == "RoleBinding" else
                   "RoleRef can only reference a ClusterRole in the global namespace. If the RoleRef cannot be "
                   "resolved, the Authorizer must return an error. This field is immutable."),
            Column("Age", "string", "", AGE_DESCRIPTION),
            Column("Users", "string", "", f"Users in the {noun}", 1),
            Column("Groups", "string", "", f"Groups in the {noun}", 1),
            Column("ServiceAccounts", "string", "", f"ServiceAccounts in the {noun}", 1)]


def binding_row(binding: Obj, now: datetime.datetime) -> Row:
    ref = binding.get("roleRef") or {}
    users, groups, service_accounts = subjects_strings(binding.get("subjects"))
    return Row([binding["metadata"]["name"], f"{ref.get('kind', '')}/{ref.get('name', '')}",
                age(binding["metadata"].get("creationTimestamp"), now),
                ", ".join(users), ", ".join(groups), ", ".join(service_accounts)])


class EscalationCheck(Protocol):
    def check(self, info: ResourceInfo, new: Obj, old: Obj | None) -> None: ...


@dataclass
class _GuardedStrategy(Strategy):
    """RBAC kinds whose writes the RBAC authorizer checks for privilege escalation (403 from `guard`)."""
    guard: EscalationCheck | None = None

    def admit(self, new: Obj, old: Obj | None) -> list[FieldError]:
        if self.guard is not None:
            self.guard.check(self.info, new, old)
        return []


@dataclass
class RoleStrategy(_GuardedStrategy):
    info: ResourceInfo = ROLE_INFO
    name_validator: NameValidator = rbac_name
    tracks_generation: bool = False

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + _validate_rules(obj, self.info.namespaced)


@dataclass
class ClusterRoleStrategy(RoleStrategy):
    info: ResourceInfo = CLUSTER_ROLE_INFO

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        rule = obj.get("aggregationRule")
        if rule is None:
            return problems
        selectors = rule.get("clusterRoleSelectors") if isinstance(rule, dict) else None
        if not selectors:
            return problems + [required("aggregationRule.clusterRoleSelectors",
                                        "at least one clusterRoleSelector required if aggregationRule is non-nil")]
        for index, selector in enumerate(selectors):
            if not isinstance(selector, dict):
                problems.append(invalid(f"aggregationRule.clusterRoleSelectors[{index}]", selector,
                                        "must be an object"))
                continue
            try:
                label_selector_from_dict(selector)
            except SelectorError as exc:
                problems.append(invalid(f"aggregationRule.clusterRoleSelectors[{index}]", selector, str(exc)))
        return problems


@dataclass
class RoleBindingStrategy(_GuardedStrategy):
    info: ResourceInfo = ROLE_BINDING_INFO
    name_validator: NameValidator = rbac_name
    tracks_generation: bool = False

    @property
    def role_kinds(self) -> list[str]:
        return ["Role", "ClusterRole"] if self.info.namespaced else ["ClusterRole"]

    def default(self, obj: Obj) -> None:
        ref = obj.get("roleRef")
        if isinstance(ref, dict) and not ref.get("apiGroup"):
            ref["apiGroup"] = GROUP
        default_subjects(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        problems = super().validate(obj)
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        if (ref.get("apiGroup") or "") != GROUP:
            problems.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", [GROUP]))
        if ref.get("kind") not in self.role_kinds:
            problems.append(not_supported("roleRef.kind", ref.get("kind") or "", self.role_kinds))
        name = ref.get("name") or ""
        if not name:
            problems.append(required("roleRef.name"))
        else:
            problems += [invalid("roleRef.name", name, p) for p in rbac_name(name)]
        subjects = obj.get("subjects")
        if subjects is not None and not isinstance(subjects, list):
            return problems + [invalid("subjects", subjects, "must be a list")]
        for index, subject in enumerate(subjects or []):
            problems += validate_subject(subject, self.info.namespaced, f"subjects[{index}]")
        return problems

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        problems = super().validate_update(new, old)
        if (new.get("roleRef") or {}) != (old.get("roleRef") or {}):
            problems.append(invalid("roleRef", _go_role_ref(new.get("roleRef")), "cannot change roleRef"))
        return problems

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(_binding_columns(self.info.kind), lambda obj: binding_row(obj, now))


@dataclass
class ClusterRoleBindingStrategy(RoleBindingStrategy):
    info: ResourceInfo = CLUSTER_ROLE_BINDING_INFO


def rbac_strategies() -> list[Strategy]:
    return [RoleStrategy(), ClusterRoleStrategy(), RoleBindingStrategy(), ClusterRoleBindingStrategy()]
