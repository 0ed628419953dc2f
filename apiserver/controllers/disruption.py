"""The disruption controller (kube-controller-manager's): keeps every PodDisruptionBudget's status current —
currentHealthy (ready pods, not being deleted, not evicted in the last 2 min), desiredHealthy and expectedPods
(minAvailable/maxUnavailable as an int or a percent of the scale of the pods' controllers: Deployment,
ReplicaSet, ReplicationController, or any kind with a `scale` subresource), disruptionsAllowed,
observedGeneration, disruptedPods (evictions not yet seen as deletions, forgotten after 2 min) and the
DisruptionAllowed condition. Pure rules: kinds/disruption_rules.py. The eviction subresource
(apiserver/eviction.py) spends the allowed disruptions.

Status writes carry the resourceVersion the controller computed from, so an eviction recorded meanwhile is
never overwritten: the write conflicts and the budget is synced again. A pod whose eviction added a
DisruptionTarget condition but that was not deleted gets the condition reset to False after 2 min."""
from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from apiserver import errors
from apiserver.api import API
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.informer import RegistryInformer, SharedInformers
from apiserver.kinds import disruption_rules as rules
from apiserver.kinds.base import Obj
from apiserver.kinds.pods import set_condition
from apiserver.kinds.scale import get_scale
from shipmate.timeutil import parse_rfc3339, rfc3339

log = logging.getLogger(__name__)

COMPONENT = "controllermanager"
STALE_DISRUPTION_TIMEOUT = datetime.timedelta(minutes=2)


def _ignore(event_type: str, obj: Obj, old: Obj | None) -> None:
    return None


def _key(obj: Obj) -> str:
    return f"{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


class DisruptionController(KeyedController):
    name = "disruption"

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.budgets_registry = api.registry("policy", "poddisruptionbudgets")
        self.budgets = informers.informer(self.budgets_registry, self._on_budget)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.replica_sets = informers.informer(api.registry("apps", "replicasets"), _ignore)
        self.deployments = informers.informer(api.registry("apps", "deployments"), _ignore)
        self.controllers = informers.informer(api.registry("", "replicationcontrollers"), _ignore)
        self._budgets_by_namespace: dict[str, set[str]] = {}
        self._pods_by_namespace: dict[str, set[str]] = {}
        self._budgets_of_pod: dict[str, set[str]] = {}  # pod key → budget keys that selected it when last seen
        self._reported: dict[str, tuple[str, str]] = {}  # budget key → last (reason, message) posted as an event
        self._stale_checks: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    # informers ------------------------------------------------------------------------------------------
    def informers(self) -> list[RegistryInformer]:
        return [self.budgets, self.pods, self.replica_sets, self.deployments, self.controllers]

    def all_keys(self) -> set[str]:
        return set(self.budgets.cache)

    def _on_budget(self, event_type: str, budget: Obj, _old: Obj | None) -> None:
        key, namespace = _key(budget), budget["metadata"].get("namespace", "")
        if event_type == "DELETED":
            self._budgets_by_namespace.get(namespace, set()).discard(key)
            self._reported.pop(key, None)
        else:
            self._budgets_by_namespace.setdefault(namespace, set()).add(key)
        self.enqueue(key)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        key, namespace = _key(pod), pod["metadata"].get("namespace", "")
        matching = set() if event_type == "DELETED" else {
            budget_key for budget_key in self._budgets_by_namespace.get(namespace, ())
            if budget_key in self.budgets.cache and rules.selects(self.budgets.cache[budget_key],
                                                                  pod["metadata"].get("labels"))}
        for budget_key in matching | self._budgets_of_pod.get(key, set()):
            self.enqueue(budget_key)
        if event_type == "DELETED":
            self._budgets_of_pod.pop(key, None)
            self._pods_by_namespace.get(namespace, set()).discard(key)
        else:
            self._budgets_of_pod[key] = matching
            self._pods_by_namespace.setdefault(namespace, set()).add(key)
            self._check_stale_disruption(pod)

    def pods_of(self, budget: Obj) -> list[Obj]:
        namespace = budget["metadata"].get("namespace", "")
        pods = (self.pods.cache.get(key) for key in self._pods_by_namespace.get(namespace, ()))
        return [pod for pod in pods if pod is not None and rules.selects(budget, pod["metadata"].get("labels"))]

    # sync -------------------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        budget = self.budgets.cache.get(key)
        if budget is None:
            return
        try:
            await self._try_sync(budget)
        except errors.APIError as exc:
            if exc.code in (404, 409):  # gone, or changed meanwhile (an eviction): look again
                raise
            await self._fail_safe(budget, exc)
        except rules.DisruptionError as exc:
            await self._fail_safe(budget, exc)

    async def _try_sync(self, budget: Obj) -> None:
        pods = self.pods_of(budget)
        if not pods:
            await self._report(budget, "Normal", "NoPods", "No matching pods found")
        scales: dict[str, tuple[str, int] | None] = {}
        if rules.needs_scale(budget):
            for pod in pods:
                ref = rules.controller_ref(pod)
                if ref is not None and ref.get("uid", "") not in scales:
                    scales[ref.get("uid", "")] = await self._find_controller(ref, pod["metadata"]["namespace"])
        try:
            expected, desired, unmanaged = rules.expected_and_desired(budget, pods, scales)
        except rules.DisruptionError as exc:
            await self._report(budget, "Warning", "CalculateExpectedPodCountFailed",
                               f"Failed to calculate the number of expected pods: {exc}")
            raise
        if pods and not unmanaged:
            self._reported.pop(_key(budget), None)  # a later NoPods/UnmanagedPods is news again
        if unmanaged:
            await self._report(budget, "Warning", "UnmanagedPods", "Pods selected by this PodDisruptionBudget "
                               f"(selector: {budget['spec'].get('selector')}) were found to be unmanaged. As a "
                               "result, the status of the PDB cannot be calculated correctly, which may result in "
                               "undefined behavior. To account for these pods please set \".spec.minAvailable\" "
                               "field of the PDB to an integer value.")
        now = self.api.clock()
        disrupted, recheck, overdue = rules.disrupted_pod_map(budget, pods, now)
        for name in overdue:
            pod = self.pods.cache.get(f"{budget['metadata']['namespace']}/{name}")
            if pod is not None:
                await self.api.record_event(pod, "Warning", "NotDeleted", "Pod was expected by PDB "
                                            f"{budget['metadata']['namespace']}/{budget['metadata']['namespace']} "
                                            "to be deleted but it wasn't", COMPONENT)
        counts = rules.Counts(rules.count_healthy(pods, disrupted, now), desired, expected)
        status = rules.new_status(budget, counts, disrupted, now)
        if status is not None:
            await self._write_status(budget, status)
        if recheck is not None:
            key = _key(budget)
            asyncio.get_running_loop().call_later(max(0.0, (recheck - now).total_seconds()), self.enqueue, key)

    async def _write_status(self, budget: Obj, status: Obj) -> None:
        """UpdateStatus with the resourceVersion the status was computed from (a conflict is synced again)."""
        meta = budget["metadata"]
        body = {**budget, "status": status}
        await self.budgets_registry.update(meta["namespace"], meta["name"], body, "status")

    async def _fail_safe(self, budget: Obj, exc: Exception) -> None:
        log.warning("PodDisruptionBudget sync failed pdb=%s error=%s", _key(budget), exc)
        await self._write_status(budget, rules.fail_safe_status(budget, str(exc), self.api.clock()))

    async def _report(self, budget: Obj, event_type: str, reason: str, message: str) -> None:
        """An event about the budget, once per change of what is reported (upstream's recorder aggregates the
        repeats; we post none)."""
        key = _key(budget)
        if self._reported.get(key) == (reason, message):
            return
        self._reported[key] = (reason, message)
        await self.api.record_event(budget, event_type, reason, message, COMPONENT)

    # controllers and their scale -----------------------------------------------------------------------------
    async def _find_controller(self, ref: Obj, namespace: str) -> tuple[str, int] | None:
        """The controller whose scale counts for a pod's controllerRef (upstream's finders, in their order):
        a ReplicationController, the Deployment of a ReplicaSet, a ReplicaSet of no Deployment, else the
        `scale` subresource of the referenced kind. None when there is no such controller."""
        group = str(ref.get("apiVersion", "")).rpartition("/")[0]
        kind, name, uid = ref.get("kind"), ref.get("name", ""), ref.get("uid")
        if kind == "ReplicationController" and group == "":
            controller = self.controllers.cache.get(f"{namespace}/{name}")
            return self._scale_of(controller, uid)
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            replica_set = self.replica_sets.cache.get(f"{namespace}/{name}")
            if replica_set is not None and replica_set["metadata"].get("uid") == uid:
                owner = rules.controller_ref(replica_set)
                if owner is None:
                    return self._scale_of(replica_set, uid)
                if owner.get("kind") == "Deployment":
                    if str(owner.get("apiVersion", "")).rpartition("/")[0] in ("apps", "extensions"):
                        found = self._scale_of(self.deployments.cache.get(f"{namespace}/{owner.get('name')}"),
                                               owner.get("uid"))
                        if found is not None:
                            return found
                else:
                    return self._scale_of(replica_set, uid)
        return await self._scale_subresource(group, kind, name, uid, namespace)

    @staticmethod
    def _scale_of(obj: Obj | None, uid: Any) -> tuple[str, int] | None:
        if obj is None or obj["metadata"].get("uid") != uid:
            return None
        return obj["metadata"]["uid"], int((obj.get("spec") or {}).get("replicas", 1))

    async def _scale_subresource(self, group: str, kind: Any, name: str, uid: Any,
                                 namespace: str) -> tuple[str, int] | None:
        registry = next((r for r in self.api.registries.values()
                         if r.info.group == group and r.info.kind == kind), None)
        if registry is None:
            raise rules.DisruptionError(f'no matches for kind "{kind}" in group "{group}"')
        if "scale" not in registry.info.subresources:
            raise rules.DisruptionError(f"{registry.info.plural}{'.' + group if group else ''} does not implement "
                                        "the scale subresource")
        try:
            scale = await get_scale(registry, namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise
        if scale["metadata"].get("uid") != uid:
            return None
        return scale["metadata"]["uid"], int(scale["spec"].get("replicas", 0))

    # stale DisruptionTarget conditions ------------------------------------------------------------------------
    def _stale_disruption_due(self, pod: Obj) -> datetime.datetime | None:
        """When a DisruptionTarget condition added by an eviction becomes stale (the pod was not deleted)."""
        status = pod.get("status") or {}
        if pod["metadata"].get("deletionTimestamp") or status.get("phase") in ("Succeeded", "Failed"):
            return None
        condition = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionTarget"), None)
        if condition is None or condition.get("status") != "True" or \
                condition.get("reason") == "TerminationByKubelet":
            return None
        since = parse_rfc3339(condition.get("lastTransitionTime")) or self.api.clock()
        return since + STALE_DISRUPTION_TIMEOUT

    def _check_stale_disruption(self, pod: Obj) -> None:
        due = self._stale_disruption_due(pod)
        key = _key(pod)
        if due is None or key in self._stale_checks:
            return
        self._stale_checks.add(key)
        delay = max(0.0, (due - self.api.clock()).total_seconds())
        asyncio.get_running_loop().call_later(delay, self._spawn_clear_stale, key)

    def _spawn_clear_stale(self, key: str) -> None:
        task = asyncio.ensure_future(self._clear_stale(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _clear_stale(self, key: str) -> None:
        self._stale_checks.discard(key)
        pod = self.pods.cache.get(key)
        if pod is None:
            return
        due = self._stale_disruption_due(pod)
        if due is None:
            return
        if due > self.api.clock():
            self._check_stale_disruption(pod)
            return
        now = rfc3339(self.api.clock())

        def reset(current: Obj) -> Obj:
            status = current.setdefault("status", {})
            condition = next((c for c in status.get("conditions") or [] if c.get("type") == "DisruptionTarget"),
                             None)
            if condition is not None and condition.get("status") == "True":
                set_condition(status, {"type": "DisruptionTarget", "status": "False"}, now)
            return current
        try:
            namespace, name = key.split("/", 1)
            await self.api.pods.guaranteed_update(namespace, name, reset, subresource="status")
            log.info("reset stale DisruptionTarget condition pod=%s", key)
        except errors.APIError as exc:
            if exc.code != 404:
                log.warning("stale DisruptionTarget condition not reset pod=%s error=%s", key, exc)
