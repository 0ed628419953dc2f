"""RBAC escalation prevention, as upstream's policy-based role and binding storage.

Writing a Role/ClusterRole needs the rules it grants already held by the writer (in the role's namespace,
cluster-wide for a ClusterRole) or verb `escalate` on it; writing a binding needs the bound role's rules
already held in the binding's namespace or verb `bind` on the role. Without `escalate`, setting, changing or
removing a ClusterRole's aggregationRule also needs `*` on every resource and URL (`must have cluster-admin
privileges to use the aggregationRule`): the aggregation controller copies rules into such a role on its own,
so only a writer who already holds everything may point it at other roles. system:masters and the server's own
control loops (no user) are exempt. Refusals are 403 with upstream's message:
`user "jane" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently
held:` followed by one `{APIGroups:[...], Resources:[...], Verbs:[...]}` line per missing permission.
"""
from __future__ import annotations

from typing import Iterable

from apiserver import errors
from apiserver.auth.authorizer import Attributes
from apiserver.auth.context import current_user
from apiserver.auth.rbac import ALL, PolicyRule, RBACIndex, authorize_from, rules_of
from apiserver.auth.user import SYSTEM_MASTERS, UserInfo
from apiserver.kinds.base import Obj, ResourceInfo
from apiserver.kinds.rbac import GROUP

FULL_AUTHORITY = (PolicyRule((ALL,), (ALL,), (ALL,)), PolicyRule((ALL,), non_resource_urls=(ALL,)))
AGGREGATION_MESSAGE = "must have cluster-admin privileges to use the aggregationRule"
_GC_FIELDS = ("ownerReferences", "finalizers", "managedFields", "resourceVersion")


def breakdown(rule: PolicyRule) -> list[PolicyRule]:
    """One rule per (group, resource, verb[, name]) and per (URL, verb): upstream's BreakdownRule."""
    rules = []
    for group in rule.api_groups:
        for resource in rule.resources:
            for verb in rule.verbs:
                if rule.resource_names:
                    rules += [PolicyRule((verb,), (group,), (resource,), (name,)) for name in rule.resource_names]
                else:
                    rules.append(PolicyRule((verb,), (group,), (resource,)))
    for url in rule.non_resource_urls:
        rules += [PolicyRule((verb,), non_resource_urls=(url,)) for verb in rule.verbs]
    return rules


def _resources_cover(owned: tuple[str, ...], wanted: tuple[str, ...]) -> bool:
    if ALL in owned:
        return True
    for resource in wanted:
        if resource in owned:
            continue
        if "/" not in resource or "*/" + resource.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owned: str, wanted: str) -> bool:
    return owned == wanted or (owned.endswith("*") and wanted.startswith(owned.rstrip("*")))


def rule_covers(owner: PolicyRule, wanted: PolicyRule) -> bool:
    """upstream's ruleCovers: does the owner's rule grant everything one broken-down rule grants?"""
    verbs = ALL in owner.verbs or set(wanted.verbs) <= set(owner.verbs)
    groups = ALL in owner.api_groups or set(wanted.api_groups) <= set(owner.api_groups)
    urls = all(any(_url_covers(o, w) for o in owner.non_resource_urls) for w in wanted.non_resource_urls)
    if wanted.resource_names:
        names = not owner.resource_names or set(wanted.resource_names) <= set(owner.resource_names)
    else:
        names = not owner.resource_names
    return verbs and groups and _resources_cover(owner.resources, wanted.resources) and urls and names


def uncovered(owned: list[PolicyRule], wanted: Iterable[PolicyRule]) -> list[PolicyRule]:
    """The broken-down rules of `wanted` no owned rule covers (upstream's Covers)."""
    return [rule for want in wanted for rule in breakdown(want) if not any(rule_covers(o, rule) for o in owned)]


def compact(rules: list[PolicyRule]) -> list[PolicyRule]:
    """Merge the verbs of simple rules on the same resource/names or URL (upstream's CompactRules)."""
    merged: dict[tuple, list[str]] = {}
    for rule in rules:
        verbs = merged.setdefault((rule.api_groups, rule.resources, rule.resource_names, rule.non_resource_urls), [])
        verbs.extend(v for v in rule.verbs if v not in verbs)
    return [PolicyRule(tuple(verbs), *key) for key, verbs in merged.items()]


def _go_strings(values: Iterable[str]) -> str:
    """Go's %q of a []string."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def compact_string(rule: PolicyRule) -> str:
    """rbacv1helpers.CompactString."""
    parts = [f"{label}:{_go_strings(values)}" for label, values in (
        ("APIGroups", rule.api_groups), ("Resources", rule.resources), ("NonResourceURLs", rule.non_resource_urls),
        ("ResourceNames", rule.resource_names), ("Verbs", rule.verbs)) if values]
    return "{" + ", ".join(parts) + "}"


def escalation_message(user: UserInfo, missing: list[PolicyRule], resolution_errors: list[str]) -> str:
    lines = sorted({compact_string(rule) for rule in compact(missing)})
    message = (f"user \"{user.name}\" (groups={_go_strings(user.groups)}) is attempting to grant RBAC permissions "
               "not currently held:\n" + "\n".join(lines))
    if resolution_errors:
        message += f"; resolution errors: [{', '.join(resolution_errors)}]"
    return message


def has_aggregation_rule(role: Obj | None) -> bool:
    rule = role.get("aggregationRule") if isinstance(role, dict) else None
    return isinstance(rule, dict) and bool(rule.get("clusterRoleSelectors"))


def _only_gc_fields_changed(new: Obj, old: Obj | None) -> bool:
    if old is None:
        return False
    strip = lambda obj: {**obj, "metadata": {k: v for k, v in (obj.get("metadata") or {}).items()  # noqa: E731
                                             if k not in _GC_FIELDS}}
    return strip(new) == strip(old)


class EscalationGuard:
    """Installed on the RBAC strategies of one API by its RBACAuthorizer (which owns the index)."""

    def __init__(self, index: RBACIndex):
        self.index = index

    def _allowed_by_verb(self, user: UserInfo, verb: str, namespace: str, plural: str, name: str) -> bool:
        return authorize_from(self.index, Attributes(user=user, verb=verb, namespace=namespace, api_group=GROUP,
                                                     resource=plural, name=name)).allowed

    def _confirm_held(self, user: UserInfo, namespace: str, info: ResourceInfo, name: str,
                      rules: Iterable[PolicyRule]) -> None:
        owned: list[PolicyRule] = []
        resolution_errors: list[str] = []
        for source in self.index.sources(user, namespace):
            owned.extend(source.rules)
            if source.error:
                resolution_errors.append(source.error)
        missing = uncovered(owned, rules)
        if missing:
            raise errors.forbidden_error(GROUP, info.plural, name, escalation_message(user, missing,
                                                                                     resolution_errors))

    def _confirm_full_authority(self, user: UserInfo, info: ResourceInfo, name: str) -> None:
        """An aggregationRule gathers rules from any ClusterRole, now or later, and keeps a role from being
        tightened: setting, changing or removing one needs `*` on everything (upstream's fullAuthority)."""
        owned = [rule for source in self.index.sources(user, "") for rule in source.rules]
        if uncovered(owned, FULL_AUTHORITY):
            raise errors.forbidden_error(GROUP, info.plural, name, AGGREGATION_MESSAGE)

    def check(self, info: ResourceInfo, new: Obj, old: Obj | None) -> None:
        """Raise 403 when the requesting user would grant permissions it does not hold."""
        user = current_user()
        if user is None or SYSTEM_MASTERS in user.groups or _only_gc_fields_changed(new, old):
            return
        meta = new.get("metadata") or {}
        namespace, name = (meta.get("namespace") or "") if info.namespaced else "", meta.get("name") or ""
        if info.kind in ("Role", "ClusterRole"):
            if self._allowed_by_verb(user, "escalate", namespace, info.plural, name):
                return
            self._confirm_held(user, namespace, info, name, rules_of(new))
            if info.kind == "ClusterRole" and (has_aggregation_rule(new) or has_aggregation_rule(old)):
                self._confirm_full_authority(user, info, name)
            return
        ref = new.get("roleRef") if isinstance(new.get("roleRef"), dict) else {}
        role_kind, role_name = ref.get("kind") or "", ref.get("name") or ""
        role_plural = "roles" if role_kind == "Role" else "clusterroles"
        if self._allowed_by_verb(user, "bind", namespace, role_plural, role_name):
            return
        if role_kind == "Role":
            rules = self.index.roles.get((namespace, role_name))
            missing_role = f'role.{GROUP} "{role_name}" not found'
        else:
            rules = self.index.cluster_roles.get(role_name)
            missing_role = f'clusterrole.{GROUP} "{role_name}" not found'
        if rules is None:  # upstream answers with the rule resolver's NotFound
            raise errors.APIError(404, "NotFound", missing_role, {"name": role_name, "group": GROUP,
                                                                  "kind": role_kind.lower()})
        self._confirm_held(user, namespace, info, name, rules)
