"""Pod Security admission: the namespace's policy applied to pods, pod templates and namespace labels.

As upstream's PodSecurity plugin (k8s.io/pod-security-admission/admission):
- pods (create, and updates that change an image or a seccomp annotation): `enforce` refuses with 403
  `pods "p" is forbidden: violates PodSecurity "baseline:latest": <detail>`; `audit` is recorded; `warn`
  adds `would violate PodSecurity "restricted:latest": <detail>` warnings (not when enforce refused);
- workload kinds with a pod template (Deployments, ReplicaSets, ReplicationControllers): audit and warn
  only (enforcement happens on the pods they create);
- namespaces: bad `pod-security.kubernetes.io/*` label values are a 422; tightening `enforce` on an
  existing namespace warns about the existing pods that would be refused.
Subresources (status, binding, eviction, scale, finalize) are not evaluated. Upstream's audit
annotations go to the log (we keep no audit log). The decisions are the pure functions here; the class
only reads the namespace and lists pods.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from apiserver import errors, request_warnings
from apiserver.admission.chain import CREATE, UPDATE, Attributes, Step
from apiserver.kinds.base import Obj
from apiserver.podsecurity import policy as pss
from apiserver.podsecurity.labels import PRIVILEGED_POLICY, Policy, policy_from_labels

if TYPE_CHECKING:
    from apiserver.admission.interface import AdmissionAPI
    from apiserver.registry import Registry

log = logging.getLogger(__name__)

ENFORCE_POLICY_ANNOTATION = "pod-security.kubernetes.io/enforce-policy"
AUDIT_VIOLATIONS_ANNOTATION = "pod-security.kubernetes.io/audit-violations"
MAX_PODS_TO_CHECK = 3000  # upstream's namespaceMaxPodsToCheck
SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"

# (group, plural) → path of the pod template in the object
TEMPLATE_KINDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "replicationcontrollers"): ("spec", "template"),
    ("", "podtemplates"): ("template",),
    ("apps", "replicasets"): ("spec", "template"),
    ("apps", "deployments"): ("spec", "template"),
    ("apps", "statefulsets"): ("spec", "template"),
    ("apps", "daemonsets"): ("spec", "template"),
    ("batch", "jobs"): ("spec", "template"),
    ("batch", "cronjobs"): ("spec", "jobTemplate", "spec", "template"),
}


@dataclass
class Decision:
    forbidden: str = ""  # non-empty: enforce refuses with this reason
    audit: str = ""  # the audit-violations annotation upstream would record
    warnings: list[str] = field(default_factory=list)


def decide(policy: Policy, meta: Obj | None, spec: Obj | None, enforce: bool) -> Decision:
    """Upstream's EvaluatePod: enforce (pods only), then audit, then warn unless enforce refused."""
    results: dict[pss.LevelVersion, list[pss.Violation]] = {}

    def violations(level_version: pss.LevelVersion) -> list[pss.Violation]:
        if level_version not in results:
            results[level_version] = pss.evaluate(level_version, meta, spec)
        return results[level_version]

    decision = Decision()
    if enforce and (found := violations(policy.enforce)):
        decision.forbidden = f"violates PodSecurity \"{policy.enforce}\": {pss.forbidden_detail(found)}"
    if found := violations(policy.audit):
        decision.audit = f"would violate PodSecurity \"{policy.audit}\": {pss.forbidden_detail(found)}"
    if not decision.forbidden and (found := violations(policy.warn)):
        decision.warnings.append(f"would violate PodSecurity \"{policy.warn}\": {pss.forbidden_detail(found)}")
    return decision


def pod_template(group: str, plural: str, obj: Obj) -> tuple[Obj, Obj] | None:
    """(metadata, spec) of the pod template a workload object carries, or None without one."""
    path = TEMPLATE_KINDS.get((group, plural))
    if path is None:
        return None
    template: Any = obj
    for key in path:
        template = template.get(key) if isinstance(template, dict) else None
    if not isinstance(template, dict):
        return None
    meta, spec = template.get("metadata"), template.get("spec")
    return (meta if isinstance(meta, dict) else {}), (spec if isinstance(spec, dict) else {})


def _container_pairs(new: Obj, old: Obj, key: str) -> list[tuple[Obj, Obj]]:
    return list(zip((new.get("spec") or {}).get(key) or [], (old.get("spec") or {}).get(key) or []))


def significant_pod_update(new: Obj, old: Obj) -> bool:
    """Whether a pod update can change what the policy sees (upstream's isSignificantPodUpdate): a container
    count, an image, or a seccomp annotation changed, or an ephemeral container was added or changed."""
    new_annotations = (new.get("metadata") or {}).get("annotations") or {}
    old_annotations = (old.get("metadata") or {}).get("annotations") or {}
    if new_annotations.get(SECCOMP_POD_ANNOTATION) != old_annotations.get(SECCOMP_POD_ANNOTATION):
        return True
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}

    def changed(container: Obj, previous: Obj) -> bool:
        key = SECCOMP_CONTAINER_ANNOTATION_PREFIX + str(container.get("name") or "")
        return container.get("image") != previous.get("image") or new_annotations.get(key) != old_annotations.get(key)
    for key in ("containers", "initContainers"):
        if len(new_spec.get(key) or []) != len(old_spec.get(key) or []):
            return True
        if any(changed(c, p) for c, p in _container_pairs(new, old, key)):
            return True
    old_ephemeral = {c.get("name"): c for c in old_spec.get("ephemeralContainers") or []}
    for container in new_spec.get("ephemeralContainers") or []:
        previous = old_ephemeral.get(container.get("name"))
        if previous is None or changed(container, previous):
            return True
    return False


def tightened_enforce(new: Policy, old: Policy) -> bool:
    """Whether a namespace's new enforce level needs its existing pods checked (upstream's skips: unchanged,
    privileged, or the same version with a level no stricter than before)."""
    if new.enforce == old.enforce or new.enforce.level == pss.PRIVILEGED:
        return False
    order = pss.LEVELS.index
    return not (new.enforce.version == old.enforce.version and order(new.enforce.level) <= order(old.enforce.level))


def existing_pod_warnings(namespace: str, enforce: pss.LevelVersion, pods: list[Obj]) -> list[str]:
    """Upstream's EvaluatePodsInNamespace: one summary line, then one line per distinct set of reasons,
    named after its lexically first pod (`p (and 2 other pods): privileged, hostPath volumes`)."""
    total = len(pods)
    checked = pods[:MAX_PODS_TO_CHECK]
    counts: dict[str, tuple[str, int]] = {}
    for pod in checked:
        found = pss.evaluate(enforce, pod.get("metadata"), pod.get("spec"))
        if not found:
            continue
        reason = pss.forbidden_reason(found)
        name = str((pod.get("metadata") or {}).get("name") or "")
        first, count = counts.get(reason, (name, 0))
        counts[reason] = (min(first, name), count + 1)
    warnings = []
    if len(checked) < total:
        warnings.append(f"new PodSecurity enforce level only checked against the first {len(checked)} of {total} "
                        "existing pods")
    if counts:
        warnings.append(f"existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level "
                        f"\"{enforce}\"")
    lines = []
    for reason, (first, count) in counts.items():
        if count == 1:
            lines.append(f"{first}: {reason}")
        elif count == 2:
            lines.append(f"{first} (and 1 other pod): {reason}")
        else:
            lines.append(f"{first} (and {count - 1} other pods): {reason}")
    return warnings + sorted(lines)


def namespace_label_problems(new_labels: Any, old_labels: Any, default: Policy) -> list[errors.FieldError]:
    """Bad policy labels on a namespace write; on an update only when they differ from the stored ones'."""
    _, problems = policy_from_labels(new_labels, default)
    if problems and old_labels is not None:
        _, old_problems = policy_from_labels(old_labels, default)
        if [p.message() for p in problems] == [p.message() for p in old_problems]:
            return []
    return problems


class PodSecurityAdmission:
    """The admission plugin: looks up the namespace's policy, returns the checks the registry runs
    on the validated object (after defaulting and validation, before storing, as upstream's validating
    admission), and issues the warnings and audit records."""

    name = "PodSecurity"

    def __init__(self, api: "AdmissionAPI", default: Policy = PRIVILEGED_POLICY, exempt_namespaces: frozenset[str] = frozenset()):
        self.api = api
        self.default = default
        self.exempt_namespaces = exempt_namespaces

    async def namespace_policy(self, namespace: str) -> tuple[Policy, list[errors.FieldError]]:
        ns = await self.api.namespace_cache.get("", namespace)
        if ns is None:
            try:
                ns = await self.api.namespaces.get("", namespace)
            except errors.APIError:
                return self.default, []
        return policy_from_labels((ns.get("metadata") or {}).get("labels"), self.default)

    def _evaluated(self, registry: "Registry") -> str:
        """'pod', 'template' or '' (not evaluated) for a kind."""
        key = (registry.info.group, registry.info.plural)
        if key == ("", "pods"):
            return "pod"
        return "template" if key in TEMPLATE_KINDS else ""

    async def _policy_to_apply(self, registry: "Registry", namespace: str) -> Policy | None:
        what = self._evaluated(registry)
        if not what or namespace in self.exempt_namespaces:
            return None
        policy, problems = await self.namespace_policy(namespace)
        if problems:
            log.info("pod security labels unparseable namespace=%s error=%s", namespace,
                     "; ".join(f"{p.field}: {p.message()}" for p in problems))
        if what == "pod" and policy.fully_privileged():
            return None
        if what == "template" and policy.audit.level == pss.PRIVILEGED and policy.warn.level == pss.PRIVILEGED:
            return None
        return policy

    def _apply(self, registry: "Registry", policy: Policy, obj: Obj) -> None:
        info = registry.info
        meta = obj.get("metadata") or {}
        if self._evaluated(registry) == "pod":
            decision = decide(policy, meta, obj.get("spec"), enforce=True)
        else:
            template = pod_template(info.group, info.plural, obj)
            if template is None:
                return
            decision = decide(policy, template[0], template[1], enforce=False)
        if decision.audit:
            log.info("pod security audit resource=%s namespace=%s name=%s %s=%s", info.plural,
                     meta.get("namespace", ""), meta.get("name", ""), AUDIT_VIOLATIONS_ANNOTATION, decision.audit)
        for warning in decision.warnings:
            request_warnings.add(warning)
        if decision.forbidden:
            raise errors.forbidden_error(info.group, info.plural, str(meta.get("name") or ""), decision.forbidden)

    async def start(self, attributes: Attributes) -> Step | None:
        """Namespace writes: their policy labels; pods and workloads: the namespace's policy on the validated
        object. Subresources are not evaluated, but for pods/ephemeralcontainers (kubectl debug adds containers
        there), as upstream."""
        if (attributes.subresource and not attributes.is_("", "pods", "ephemeralcontainers")) \
                or attributes.operation not in (CREATE, UPDATE):
            return None
        if attributes.is_("", "namespaces"):
            return NamespaceUpdate(self) if attributes.operation == UPDATE else _NamespaceCreate(self)
        policy = await self._policy_to_apply(attributes.registry, attributes.namespace)
        if policy is None:
            return None
        return _PolicyCheck(self, attributes.registry, policy)


class _PolicyCheck(Step):
    def __init__(self, admission: PodSecurityAdmission, registry: "Registry", policy: Policy):
        self.admission, self.registry, self.policy = admission, registry, policy

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None:
            return
        if old is not None and self.admission._evaluated(self.registry) == "pod" \
                and not significant_pod_update(obj, old):
            return
        self.admission._apply(self.registry, self.policy, obj)


class _NamespaceCreate(Step):
    def __init__(self, admission: PodSecurityAdmission):
        self.admission = admission

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if obj is None:
            return
        problems = namespace_label_problems((obj.get("metadata") or {}).get("labels"), None, self.admission.default)
        if problems:
            raise errors.invalid_object("", "Namespace", str(obj["metadata"].get("name") or ""), problems)


class NamespaceUpdate(Step):
    """One namespace update: `validate(new, old)` refuses bad labels; `committed()`, once the write went
    through, warns about the existing pods a stricter enforce level would refuse (upstream dry-runs them too)."""

    def __init__(self, admission: PodSecurityAdmission):
        self.admission = admission
        self.seen: tuple[Obj, Obj] | None = None

    async def validate(self, new: Obj | None, old: Obj | None) -> None:
        if new is None or old is None:
            return
        default = self.admission.default
        problems = namespace_label_problems((new.get("metadata") or {}).get("labels"),
                                            (old.get("metadata") or {}).get("labels") or {}, default)
        if problems:
            raise errors.invalid_object("", "Namespace", str(new["metadata"].get("name") or ""), problems)
        self.seen = (new, old)

    async def committed(self, obj: Obj | None) -> None:
        if self.seen is None:
            return
        new, old = self.seen
        default = self.admission.default
        name = str((new.get("metadata") or {}).get("name") or "")
        new_policy, _ = policy_from_labels((new.get("metadata") or {}).get("labels"), default)
        old_policy, _ = policy_from_labels((old.get("metadata") or {}).get("labels"), default)
        if not tightened_enforce(new_policy, old_policy) or name in self.admission.exempt_namespaces:
            return
        pods, _ = await self.admission.api.pods.list(name)
        for warning in existing_pod_warnings(name, new_policy.enforce, pods):
            request_warnings.add(warning)
