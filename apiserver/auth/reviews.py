"""Access and identity reviews: authorization.k8s.io/v1 (Self|Local)SubjectAccessReview, SelfSubjectRulesReview
and authentication.k8s.io/v1 SelfSubjectReview. Create-only and never stored: the answer is the request with
its status filled in (what `kubectl auth can-i [--list]` and `kubectl auth whoami` read)."""
from __future__ import annotations

from typing import Any, Iterable, Protocol

from apiserver import errors
from apiserver.auth.authorizer import Attributes, Authorizer, Decision
from apiserver.auth.rbac import PolicyRule
from apiserver.auth.user import UserInfo
from apiserver.errors import FieldError, invalid
from apiserver.kinds.base import Obj, ResourceInfo

AUTHORIZATION = "authorization.k8s.io"
AUTHENTICATION = "authentication.k8s.io"
SELF_SUBJECT_ACCESS_REVIEW = ResourceInfo(AUTHORIZATION, "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews",
                                          "selfsubjectaccessreview", False, verbs=("create",))
SUBJECT_ACCESS_REVIEW = ResourceInfo(AUTHORIZATION, "v1", "SubjectAccessReview", "subjectaccessreviews",
                                     "subjectaccessreview", False, verbs=("create",))
LOCAL_SUBJECT_ACCESS_REVIEW = ResourceInfo(AUTHORIZATION, "v1", "LocalSubjectAccessReview",
                                           "localsubjectaccessreviews", "localsubjectaccessreview", True,
                                           verbs=("create",))
SELF_SUBJECT_RULES_REVIEW = ResourceInfo(AUTHORIZATION, "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews",
                                         "selfsubjectrulesreview", False, verbs=("create",))
SELF_SUBJECT_REVIEW = ResourceInfo(AUTHENTICATION, "v1", "SelfSubjectReview", "selfsubjectreviews",
                                   "selfsubjectreview", False, verbs=("create",))
REVIEW_KINDS = (SELF_SUBJECT_ACCESS_REVIEW, SUBJECT_ACCESS_REVIEW, LOCAL_SUBJECT_ACCESS_REVIEW,
                SELF_SUBJECT_RULES_REVIEW, SELF_SUBJECT_REVIEW)


class RuleResolver(Protocol):
    async def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[PolicyRule], list[str]]: ...


def check_body(body: Any, info: ResourceInfo, namespace: str = "") -> Obj:
    """The review as sent, with apiVersion/kind checked (400 on a mismatch) and both filled in."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be a JSON object")
    if body.get("apiVersion") not in (None, "", info.api_version):
        raise errors.bad_request(f"the API version in the data ({body['apiVersion']}) does not match the expected "
                                 f"API version ({info.api_version})")
    if body.get("kind") not in (None, "", info.kind):
        raise errors.bad_request(f"the kind in the data ({body['kind']}) does not match the expected kind "
                                 f"({info.kind})")
    meta = body.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise errors.bad_request("metadata must be an object")
    review = {**body, "apiVersion": info.api_version, "kind": info.kind, "metadata": dict(meta or {})}
    if info.namespaced:
        if review["metadata"].get("namespace") not in (None, "", namespace):
            raise errors.bad_request("the namespace of the provided object does not match the namespace sent on "
                                     "the request")
        review["metadata"]["namespace"] = namespace
    spec = review.get("spec")
    if spec is not None and not isinstance(spec, dict):
        raise errors.bad_request(f'{info.kind} in version "v1" cannot be handled as a {info.kind}: spec must be an '
                                 "object")
    review["spec"] = dict(spec or {})
    review.pop("status", None)
    return review


def _meta_problems(meta: Obj, allow_namespace: bool) -> list[FieldError]:
    ignored = {"managedFields", "creationTimestamp"} | ({"namespace"} if allow_namespace else set())
    if any(value not in (None, "", {}, []) for key, value in meta.items() if key not in ignored):
        detail = "must be empty except for namespace" if allow_namespace else "must be empty"
        return [invalid("metadata", meta, detail)]
    return []


def _spec_problems(spec: Obj, with_subject: bool) -> list[FieldError]:
    problems = []
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        problems.append(invalid("spec.nonResourceAttributes", non_resource,
                                "cannot be specified in combination with resourceAttributes"))
    if resource is None and non_resource is None:
        problems.append(invalid("spec.resourceAttributes", None,
                                "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    for key in ("resourceAttributes", "nonResourceAttributes"):
        if spec.get(key) is not None and not isinstance(spec[key], dict):
            problems.append(invalid(f"spec.{key}", spec[key], "must be an object"))
    if with_subject and not spec.get("user") and not spec.get("groups"):
        problems.append(invalid("spec.user", spec.get("user") or "", "at least one of user or group must be specified"))
    return problems


def validate_access_review(review: Obj) -> list[FieldError]:
    kind, spec = review["kind"], review["spec"]
    if kind == SELF_SUBJECT_ACCESS_REVIEW.kind:
        return _spec_problems(spec, False) + _meta_problems(review["metadata"], False)
    if kind == SUBJECT_ACCESS_REVIEW.kind:
        return _spec_problems(spec, True) + _meta_problems(review["metadata"], False)
    problems = _spec_problems(spec, True) + _meta_problems(review["metadata"], True)
    namespace = review["metadata"].get("namespace") or ""
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict) and (resource.get("namespace") or "") != namespace:
        problems.append(invalid("spec.resourceAttributes.namespace", resource.get("namespace") or "",
                                "must match metadata.namespace"))
    if spec.get("nonResourceAttributes") is not None:
        problems.append(invalid("spec.nonResourceAttributes", spec["nonResourceAttributes"],
                                "disallowed on this kind of request"))
    return problems


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def subject_of(spec: Obj) -> UserInfo:
    """The user a (Local)SubjectAccessReview asks about."""
    extra = spec.get("extra") if isinstance(spec.get("extra"), dict) else {}
    return UserInfo(str(spec.get("user") or ""), _strings(spec.get("groups")), str(spec.get("uid") or ""),
                    {str(k): _strings(v) for k, v in extra.items()})


def attributes_of(spec: Obj, user: UserInfo) -> Attributes:
    """upstream's ResourceAttributesFrom / NonResourceAttributesFrom."""
    resource = spec.get("resourceAttributes")
    if isinstance(resource, dict):
        return Attributes(user=user, verb=str(resource.get("verb") or ""),
                          namespace=str(resource.get("namespace") or ""), api_group=str(resource.get("group") or ""),
                          api_version=str(resource.get("version") or ""),
                          resource=str(resource.get("resource") or ""),
                          subresource=str(resource.get("subresource") or ""), name=str(resource.get("name") or ""),
                          resource_request=True)
    non_resource = spec.get("nonResourceAttributes") or {}
    return Attributes(user=user, verb=str(non_resource.get("verb") or ""), path=str(non_resource.get("path") or ""),
                      resource_request=False)


async def access_review(review: Obj, requester: UserInfo, authorizer: Authorizer) -> Obj:
    """Fill status of a checked (Self|Local)SubjectAccessReview; 422 when it is invalid."""
    problems = validate_access_review(review)
    if problems:
        raise errors.invalid_object(AUTHORIZATION, review["kind"], "", problems)
    user = requester if review["kind"] == SELF_SUBJECT_ACCESS_REVIEW.kind else subject_of(review["spec"])
    verdict = await authorizer.authorize(attributes_of(review["spec"], user))
    status: Obj = {"allowed": verdict.decision is Decision.ALLOW}
    if verdict.decision is Decision.DENY:
        status["denied"] = True
    if verdict.reason:
        status["reason"] = verdict.reason
    return {**review, "status": status}


def _rule_entries(rules: Iterable[PolicyRule]) -> tuple[list[Obj], list[Obj]]:
    resource_rules, non_resource_rules = [], []
    for rule in rules:
        if rule.resources:
            entry: Obj = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups),
                          "resources": list(rule.resources)}
            if rule.resource_names:
                entry["resourceNames"] = list(rule.resource_names)
            resource_rules.append(entry)
        if rule.non_resource_urls:
            non_resource_rules.append({"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)})
    return resource_rules, non_resource_rules


async def rules_review(review: Obj, requester: UserInfo, resolvers: list[RuleResolver],
                       incomplete: bool = False) -> Obj:
    """Fill status of a SelfSubjectRulesReview from every rule resolver (the union's RulesFor)."""
    namespace = review["spec"].get("namespace")
    if not namespace:
        raise errors.bad_request("no namespace on request")
    rules: list[PolicyRule] = []
    problems: list[str] = []
    for resolver in resolvers:
        found, resolver_errors = await resolver.rules_for(requester, str(namespace))
        rules.extend(found)
        problems.extend(resolver_errors)
    resource_rules, non_resource_rules = _rule_entries(rules)
    status: Obj = {"resourceRules": resource_rules, "nonResourceRules": non_resource_rules,
                   "incomplete": incomplete or bool(problems)}
    if problems:
        status["evaluationError"] = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
    return {**review, "status": status}


def self_subject_review(review: Obj, requester: UserInfo) -> Obj:
    review.pop("spec", None)
    return {**review, "status": {"userInfo": requester.as_user_info()}}
