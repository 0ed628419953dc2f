"""RBAC rules: Roles/ClusterRoles granted through RoleBindings/ClusterRoleBindings, as an in-memory index.

RBACIndex resolves a user's rules; authorize_from answers a request from it. As upstream, RBAC only
allows: when no rule matches, it has no opinion (the reason lists unresolvable role references).
The authorizer that keeps the index current from watches is auth/rbac_authorizer.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from apiserver.auth.authorizer import Attributes, Decision, Verdict
from apiserver.auth.user import UserInfo
from apiserver.kinds.base import Obj
from apiserver.kinds.rbac import GROUP, GROUP_KIND, SERVICE_ACCOUNT, USER

SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"
SOURCE_CACHE_SIZE = 4096  # users x namespaces whose rule sources are memoized
# Only short keys (user name, groups, namespace) are memoized: the namespace comes from the URL and the user
# may be impersonated, so either can be as long as a request line or header allows.
SOURCE_CACHE_KEY_LENGTH = 512
ALL = "*"


def service_account_username(namespace: str, name: str) -> str:
    return f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str)) if isinstance(value, list) else ()


@dataclass(frozen=True)
class PolicyRule:
    verbs: tuple[str, ...] = ()
    api_groups: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    resource_names: tuple[str, ...] = ()
    non_resource_urls: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, rule: Any) -> "PolicyRule":
        rule = rule if isinstance(rule, dict) else {}
        return cls(_strings(rule.get("verbs")), _strings(rule.get("apiGroups")), _strings(rule.get("resources")),
                   _strings(rule.get("resourceNames")), _strings(rule.get("nonResourceURLs")))

    def to_dict(self) -> Obj:
        """The rbac/v1 PolicyRule JSON (empty lists omitted, as upstream's omitempty)."""
        fields = (("verbs", self.verbs), ("apiGroups", self.api_groups), ("resources", self.resources),
                  ("resourceNames", self.resource_names), ("nonResourceURLs", self.non_resource_urls))
        return {key: list(value) for key, value in fields if value or key == "verbs"}


def rules_of(obj: Obj) -> tuple[PolicyRule, ...]:
    rules = obj.get("rules")
    return tuple(PolicyRule.from_dict(r) for r in rules) if isinstance(rules, list) else ()


def _resource_matches(rule: PolicyRule, resource: str, subresource: str) -> bool:
    combined = f"{resource}/{subresource}" if subresource else resource
    for candidate in rule.resources:
        if candidate in (ALL, combined):
            return True
        if subresource and candidate == f"*/{subresource}":
            return True
    return False


def _url_matches(rule: PolicyRule, path: str) -> bool:
    for url in rule.non_resource_urls:
        if url in (ALL, path):
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(attributes: Attributes, rule: PolicyRule) -> bool:
    """Upstream's RuleAllows: verb, then group/resource/name for resource requests or the URL otherwise."""
    if ALL not in rule.verbs and attributes.verb not in rule.verbs:
        return False
    if not attributes.resource_request:
        return _url_matches(rule, attributes.path)
    return ((ALL in rule.api_groups or attributes.api_group in rule.api_groups)
            and _resource_matches(rule, attributes.resource, attributes.subresource)
            and (not rule.resource_names or attributes.name in rule.resource_names))


@dataclass(frozen=True)
class Binding:
    kind: str  # RoleBinding or ClusterRoleBinding
    namespace: str
    name: str
    role_kind: str
    role_name: str


SubjectKey = tuple[str, str, str]  # (binding namespace or "" for cluster bindings, "User"|"Group", name)
BindingKey = tuple[str, str, str]  # (kind, namespace, name)


def _subject_keys(binding_namespace: str, subject: Any) -> SubjectKey | None:
    """Index key of one subject; a ServiceAccount is indexed as its username."""
    if not isinstance(subject, dict) or not subject.get("name"):
        return None
    kind, name = subject.get("kind"), subject["name"]
    if kind == USER and subject.get("apiGroup", GROUP) == GROUP:
        return binding_namespace, USER, name
    if kind == GROUP_KIND and subject.get("apiGroup", GROUP) == GROUP:
        return binding_namespace, GROUP_KIND, name
    if kind == SERVICE_ACCOUNT:
        namespace = subject.get("namespace") or binding_namespace
        return (binding_namespace, USER, service_account_username(namespace, name)) if namespace else None
    return None


def describe_subject(subject: Obj, binding_namespace: str) -> str:
    if subject.get("kind") == SERVICE_ACCOUNT:
        return f'ServiceAccount "{subject["name"]}/{subject.get("namespace") or binding_namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


def describe_source(binding: Binding, subject: Obj) -> str:
    """As upstream's binding describers, e.g. `RoleBinding "read/dev" of Role "reader" to User "jane"`."""
    name = f"{binding.name}/{binding.namespace}" if binding.namespace else binding.name
    return f'{binding.kind} "{name}" of {binding.role_kind} "{binding.role_name}" to ' \
           f"{describe_subject(subject, binding.namespace)}"


@dataclass(frozen=True)
class RuleSource:
    """Rules one binding grants a user, or the error resolving its role."""
    binding: Binding
    subject: Obj
    rules: tuple[PolicyRule, ...]
    error: str = ""

    @property
    def description(self) -> str:
        return describe_source(self.binding, self.subject)


class RBACIndex:
    """Roles by name and bindings by subject, updated from watch events of the four RBAC kinds."""

    def __init__(self) -> None:
        self.roles: dict[tuple[str, str], tuple[PolicyRule, ...]] = {}
        self.cluster_roles: dict[str, tuple[PolicyRule, ...]] = {}
        self._bindings: dict[BindingKey, Binding] = {}
        self._binding_subjects: dict[BindingKey, list[tuple[SubjectKey, Obj]]] = {}
        self._by_subject: dict[SubjectKey, dict[BindingKey, Obj]] = {}
        # (user, groups, namespace) -> its rule sources; any change to the index clears it.
        self._sources: dict[tuple[str, tuple[str, ...], str], tuple[RuleSource, ...]] = {}

    def apply(self, kind: str, event_type: str, obj: Obj) -> None:
        self._sources.clear()
        meta = obj.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        deleted = event_type == "DELETED"
        if kind == "Role":
            self._set(self.roles, (namespace, name), None if deleted else rules_of(obj))
        elif kind == "ClusterRole":
            self._set(self.cluster_roles, name, None if deleted else rules_of(obj))
        elif kind in ("RoleBinding", "ClusterRoleBinding"):
            namespace = namespace if kind == "RoleBinding" else ""
            self._remove_binding((kind, namespace, name))
            if not deleted:
                self._add_binding(kind, namespace, name, obj)

    @staticmethod
    def _set(table: dict, key: Any, value: Any) -> None:
        if value is None:
            table.pop(key, None)
        else:
            table[key] = value

    def _remove_binding(self, key: BindingKey) -> None:
        self._bindings.pop(key, None)
        for subject_key, _ in self._binding_subjects.pop(key, []):
            holders = self._by_subject.get(subject_key)
            if holders is not None:
                holders.pop(key, None)
                if not holders:
                    del self._by_subject[subject_key]

    def _add_binding(self, kind: str, namespace: str, name: str, obj: Obj) -> None:
        ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
        key = (kind, namespace, name)
        self._bindings[key] = Binding(kind, namespace, name, ref.get("kind") or "", ref.get("name") or "")
        entries = []
        for subject in obj.get("subjects") or []:
            subject_key = _subject_keys(namespace, subject)
            if subject_key is None:
                continue
            # The first subject of a binding that names the user is the one reported, as upstream.
            self._by_subject.setdefault(subject_key, {}).setdefault(key, subject)
            entries.append((subject_key, subject))
        self._binding_subjects[key] = entries

    @staticmethod
    def _role_key(binding: Binding) -> tuple[str, str, str]:
        return binding.role_kind, binding.namespace if binding.role_kind == "Role" else "", binding.role_name

    def _role_rules(self, binding: Binding) -> tuple[tuple[PolicyRule, ...], str]:
        if binding.role_kind == "Role" and binding.namespace:
            rules = self.roles.get((binding.namespace, binding.role_name))
            return (rules, "") if rules is not None else \
                ((), f'role.{GROUP} "{binding.role_name}" not found')
        if binding.role_kind == "ClusterRole":
            rules = self.cluster_roles.get(binding.role_name)
            return (rules, "") if rules is not None else \
                ((), f'clusterrole.{GROUP} "{binding.role_name}" not found')
        return (), f'unsupported role reference kind: "{binding.role_kind}"'

    def _matching(self, user: UserInfo, namespace: str) -> list[tuple[BindingKey, Obj]]:
        found: dict[BindingKey, Obj] = {}
        for subject_key in [(namespace, USER, user.name), *((namespace, GROUP_KIND, g) for g in user.groups)]:
            for key, subject in self._by_subject.get(subject_key, {}).items():
                found.setdefault(key, subject)
        return sorted(found.items())

    def sources(self, user: UserInfo, namespace: str = "") -> tuple[RuleSource, ...]:
        """Cluster bindings first, then the namespace's role bindings (upstream's VisitRulesFor order), memoized
        per user and namespace until the next change."""
        if len(user.name) + sum(map(len, user.groups)) + len(namespace) > SOURCE_CACHE_KEY_LENGTH:
            return tuple(self._resolve(user, namespace))
        key = (user.name, user.groups, namespace)
        found = self._sources.get(key)
        if found is None:
            if len(self._sources) >= SOURCE_CACHE_SIZE:
                self._sources.clear()
            found = self._sources[key] = tuple(self._resolve(user, namespace))
        return found

    def _resolve(self, user: UserInfo, namespace: str) -> Iterator[RuleSource]:
        """A role granted by several bindings is visited once (the first binding): the later ones add nothing."""
        seen: set[tuple[str, str, str]] = set()
        for scope in (["", namespace] if namespace else [""]):
            for key, subject in self._matching(user, scope):
                binding = self._bindings[key]
                role = self._role_key(binding)
                if role in seen:
                    continue
                seen.add(role)
                rules, error = self._role_rules(binding)
                yield RuleSource(binding, subject, rules, error)


def error_reason(errors: list[str]) -> str:
    """`RBAC: <err>` or `RBAC: [<err>, <err>]` as apimachinery's aggregate error prints."""
    if not errors:
        return ""
    return "RBAC: " + (errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]")


def authorize_from(index: RBACIndex, attributes: Attributes) -> Verdict:
    errors = []
    for source in index.sources(attributes.user, attributes.namespace):
        if source.error:
            errors.append(source.error)
        for rule in source.rules:
            if rule_allows(attributes, rule):
                return Verdict(Decision.ALLOW, f"RBAC: allowed by {source.description}")
    return Verdict(Decision.NO_OPINION, error_reason(errors))
