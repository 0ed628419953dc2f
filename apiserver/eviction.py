"""`pods/eviction` (policy/v1 Eviction): what `kubectl drain` posts. Upstream's eviction REST, honouring
PodDisruptionBudgets:

- A pod that is Pending, finished or already being deleted is deleted at once: it is not running, so evicting
  it disrupts nothing.
- Otherwise the budgets of its namespace selecting it are consulted: none → delete; more than one → a 500
  Status ("This pod has more than one PodDisruptionBudget, ..."); one → its status decides. A not-ready pod is
  deleted without spending a disruption when the budget's unhealthyPodEvictionPolicy is AlwaysAllow, or when
  the budget is satisfied anyway (currentHealthy ≥ desiredHealthy > 0). A ready pod spends one of the budget's
  disruptionsAllowed: the budget's status is written first (optimistically, on its resourceVersion, retried on
  conflicts) with disruptionsAllowed − 1 and the pod in disruptedPods, then the pod is deleted. None left →
  429 TooManyRequests "Cannot evict pod as it would violate the pod's disruption budget." (kubectl drain waits
  and retries); a budget the disruption controller has not seen at its current generation → 429 too.
- Deleting adds the DisruptionTarget condition (reason EvictionByEvictionAPI) first, then deletes with the
  Eviction's deleteOptions. A pod deleted after a budget decision is deleted on the resourceVersion it was
  judged at; if it changed meanwhile, 429 and the client retries.
Answers 201 with a Success Status, as upstream.
"""
from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from apiserver import errors
from apiserver.api import API
from apiserver.kinds import disruption_rules as rules
from apiserver.kinds.base import Obj
from apiserver.kinds.pods import set_condition
from apiserver.registry import DeleteOptions
from shipmate.timeutil import rfc3339

EVICTION_API_VERSIONS = ("policy/v1", "policy/v1beta1")
SUCCESS: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
BUDGET_VIOLATION = "Cannot evict pod as it would violate the pod's disruption budget."
CONFLICT_RETRIES = 20
CONFLICT_DELAY = 0.1


def eviction_delete_options(name: str, body: Any, dry_run: bool) -> DeleteOptions:
    """The DeleteOptions an Eviction body asks for (checked as upstream's eviction REST does)."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request must be an Eviction object")
    if body.get("kind") not in (None, "Eviction") or body.get("apiVersion") not in (None, *EVICTION_API_VERSIONS):
        raise errors.bad_request(f"expected policy/v1 Eviction, got {body.get('apiVersion')} {body.get('kind')}")
    meta = body.get("metadata") or {}
    if meta.get("name") and meta["name"] != name:
        raise errors.bad_request("name in URL does not match name in Eviction object")
    options = body.get("deleteOptions") or {}
    grace = options.get("gracePeriodSeconds")
    if grace is not None and not isinstance(grace, int):
        raise errors.bad_request("deleteOptions.gracePeriodSeconds must be an integer")
    preconditions = options.get("preconditions") or {}
    return DeleteOptions(grace, preconditions.get("uid"), preconditions.get("resourceVersion"),
                         dry_run or bool(options.get("dryRun")), options.get("propagationPolicy"),
                         options.get("orphanDependents"))


def too_many_requests(message: str, cause: str, retry_after: int) -> errors.APIError:
    details: Obj = {"causes": [{"reason": "DisruptionBudget", "message": cause}]}
    headers = {}
    if retry_after:
        details["retryAfterSeconds"] = retry_after
        headers["Retry-After"] = str(retry_after)
    return errors.APIError(429, "TooManyRequests", message, details, headers)


def still_processing(budget_name: str) -> errors.APIError:
    return too_many_requests(BUDGET_VIOLATION, f"The disruption budget {budget_name} is still being processed by the "
                                               "server.", 10)


def check_budget(budget: Obj) -> None:
    """checkAndDecrement's refusals; returns when one disruption may be spent."""
    name, status = budget["metadata"]["name"], budget.get("status") or {}
    if (status.get("observedGeneration") or 0) < (budget["metadata"].get("generation") or 0):
        raise still_processing(name)
    allowed = status.get("disruptionsAllowed", 0)
    if allowed < 0:
        raise errors.forbidden_error("policy", "poddisruptionbudget", name, "pdb disruptions allowed is negative")
    if len(status.get("disruptedPods") or {}) > rules.MAX_DISRUPTED_PODS:
        raise errors.forbidden_error("policy", "poddisruptionbudget", name, "DisruptedPods map too big - too many "
                                                                            "evictions not confirmed by PDB controller")
    if allowed == 0:
        raise too_many_requests(BUDGET_VIOLATION, f"The disruption budget {name} needs "
                                                  f"{status.get('desiredHealthy', 0)} healthy pods and has "
                                                  f"{status.get('currentHealthy', 0)} currently", 0)


def can_ignore_budgets(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Pending") or \
        bool(pod["metadata"].get("deletionTimestamp"))


def enforces_resource_version(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and \
        not pod["metadata"].get("deletionTimestamp")


async def evict(api: API, namespace: str, name: str, body: Any, dry_run: bool = False) -> Obj:
    options = eviction_delete_options(name, body, dry_run)
    for attempt in range(CONFLICT_RETRIES):
        pod = await api.pods.get(namespace, name)
        if not can_ignore_budgets(pod):
            break
        delete_options = options
        if enforces_resource_version(pod) and options.precondition_resource_version is None:
            delete_options = dataclasses.replace(options,
                                                 precondition_resource_version=pod["metadata"]["resourceVersion"])
        try:
            await delete_with_condition(api, namespace, name, delete_options)
            return SUCCESS
        except errors.APIError as exc:
            if exc.code != 409 or options.precondition_resource_version is not None or \
                    attempt + 1 == CONFLICT_RETRIES:
                raise
        await asyncio.sleep(CONFLICT_DELAY)
    budgets = [budget for budget in (await api.registry("policy", "poddisruptionbudgets").list(namespace))[0]
               if rules.selects(budget, pod["metadata"].get("labels"))]
    if len(budgets) > 1:
        raise errors.APIError(500, "", "This pod has more than one PodDisruptionBudget, which the eviction "
                                       "subresource does not support.")
    guarded = False  # deleted on the resourceVersion the budget decision was made at
    if budgets:
        budget = budgets[0]
        policy = (budget.get("spec") or {}).get("unhealthyPodEvictionPolicy")
        status = budget.get("status") or {}
        if not rules.pod_ready(pod) and (policy == "AlwaysAllow" or (
                status.get("currentHealthy", 0) >= status.get("desiredHealthy", 0) > 0)):
            guarded = True  # an unhealthy pod: nothing it protects is disrupted
        else:
            await spend_disruption(api, budget, name, options.dry_run)
    delete_options = options
    if guarded:
        delete_options = dataclasses.replace(options, precondition_resource_version=pod["metadata"]["resourceVersion"])
    try:
        await delete_with_condition(api, namespace, name, delete_options)
    except errors.APIError as exc:
        if exc.code == 409 and guarded and options.precondition_resource_version is None:
            raise still_processing(budgets[0]["metadata"]["name"]) from None
        raise
    return SUCCESS


async def spend_disruption(api: API, budget: Obj, pod_name: str, dry_run: bool) -> None:
    """checkAndDecrement, retried on conflicting writes of the budget (the disruption controller's)."""
    registry = api.registry("policy", "poddisruptionbudgets")
    meta = budget["metadata"]
    for attempt in range(CONFLICT_RETRIES):
        check_budget(budget)
        status = rules.decremented(budget, pod_name, api.clock(), dry_run)
        if dry_run:
            return
        try:
            await registry.update(meta["namespace"], meta["name"], {**budget, "status": status}, "status")
            return
        except errors.APIError as exc:
            if exc.code != 409 or attempt + 1 == CONFLICT_RETRIES:
                raise
        await asyncio.sleep(CONFLICT_DELAY)
        budget = await registry.get(meta["namespace"], meta["name"])
    raise errors.APIError(504, "Timeout", f'couldn\'t update PodDisruptionBudget "{meta["name"]}" due to conflicts',
                          {"retryAfterSeconds": 10})


def _precondition_conflict(name: str, why: str) -> errors.APIError:
    return errors.APIError(409, "Conflict", f'Operation cannot be fulfilled on Pod "{name}": {why}',
                           {"name": name, "kind": "Pod"})


async def delete_with_condition(api: API, namespace: str, name: str, options: DeleteOptions) -> None:
    """addConditionAndDeletePod: DisruptionTarget=True (EvictionByEvictionAPI) on the pod, then the delete."""
    if not options.dry_run:
        def mark(pod: Obj) -> Obj:
            meta = pod["metadata"]
            if options.precondition_uid and options.precondition_uid != meta.get("uid"):
                raise _precondition_conflict(name, f"the UID in the precondition ({options.precondition_uid}) does "
                                                   f"not match the UID in record ({meta.get('uid')}). The object might "
                                                   "have been deleted and then recreated")
            if options.precondition_resource_version and \
                    options.precondition_resource_version != meta.get("resourceVersion"):
                raise _precondition_conflict(name, "the ResourceVersion in the precondition "
                                                   f"({options.precondition_resource_version}) does not match the "
                                                   f"ResourceVersion in record ({meta.get('resourceVersion')}). The "
                                                   "object might have been modified")
            meta.pop("resourceVersion", None)
            set_condition(pod.setdefault("status", {}), {"type": "DisruptionTarget", "status": "True",
                                                         "reason": "EvictionByEvictionAPI",
                                                         "message": "Eviction API: evicting"}, rfc3339(api.clock()))
            return pod
        updated = await api.pods.guaranteed_update(namespace, name, mark, subresource="status")
        if options.precondition_resource_version is not None:
            options = dataclasses.replace(options, precondition_resource_version=updated["metadata"]["resourceVersion"])
    await api.delete(api.pods, namespace, name, options)
