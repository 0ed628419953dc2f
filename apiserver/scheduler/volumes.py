"""The VolumeBinding plugin of the scheduler (kube-scheduler's, over the PV controller's matching rules in
controllers/pv_rules.py):

- PreFilter: a pod whose claim is missing, being deleted or lost, or unbound while its class binds
  Immediately, is unschedulable on every node with upstream's reason (`persistentvolumeclaim "x" not found`,
  `pod has unbound immediate PersistentVolumeClaims`).
- Filter, per node: a bound claim's volume must have node affinity matching the node (`node(s) didn't match
  PersistentVolume's node affinity`) and exist (`... bound to non-existent pv(s)`); a WaitForFirstConsumer
  claim needs an Available volume fitting the node, or a provisioner that can make one there (`node(s)
  didn't find available persistent volumes to bind`): for `shipmate.io/local-path` the node must publish its
  local-path directory and its allocatable ephemeral storage must hold every local-path volume on it plus
  the new ones (`node(s) did not have enough free storage`). These are UnschedulableAndUnresolvable:
  preemption cannot help on such nodes.
- Reserve/PreBind (`assume`, then `bind` in the binding task, before the pod's own binding): a chosen static
  volume is pre-bound to the claim (its claimRef), a claim to provision gets `volume.kubernetes.io/
  selected-node`; then the pod waits (up to 10 min, as upstream's bind timeout) until the PV controller has
  bound every claim. Assumed choices are remembered until then, so the next pods do not take the same
  volume or the same storage.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable

from apiserver import errors
from apiserver.controllers import pv_rules as rules
from apiserver.controllers.writes import modify
from apiserver.informer import SharedInformers
from apiserver.kinds.persistentvolumeclaims import claim_class, storage_request
from apiserver.kinds.storageclasses import NO_PROVISIONER
from apiserver.scheduler.predicates import (NEVER_PREEMPTS, NO_VICTIMS, NOT_HELPFUL, VOLUME_REASONS, Decision, NodeInfo,
                                            Resources, filter_reasons, nodes_available, pod_facts, unresolvable)
from shipmate import local_path
from shipmate.pod_resources import resource_list

Obj = dict[str, Any]

UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
REASON_NODE_CONFLICT, REASON_BIND_CONFLICT, REASON_NOT_ENOUGH_SPACE, REASON_PV_NOT_EXIST = VOLUME_REASONS
BIND_TIMEOUT = 600.0          # kube-scheduler's VolumeBinding bindTimeoutSeconds
BIND_POLL = 0.25


def claim_names(pod: Obj) -> list[str]:
    return [v["persistentVolumeClaim"].get("claimName", "") for v in (pod.get("spec") or {}).get("volumes") or []
            if isinstance(v, dict) and isinstance(v.get("persistentVolumeClaim"), dict)]


def claim_problem(pod: Obj, claims: dict[str, Obj], classes: dict[str, Obj] | None = None) -> str:
    """PreFilter: why the pod's claims keep it off every node ("" when they do not). `claims`:
    "<namespace>/<name>" → claim; `classes`: name → StorageClass (a claim whose class binds
    WaitForFirstConsumer and names no volume is the Filter's, not unbound-immediate)."""
    namespace = pod["metadata"].get("namespace", "")
    unbound = False
    for name in claim_names(pod):
        claim = claims.get(f"{namespace}/{name}")
        if claim is None:
            return f'persistentvolumeclaim "{name}" not found'
        spec, status = claim.get("spec") or {}, claim.get("status") or {}
        if status.get("phase") == "Lost":
            return f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume "{spec.get("volumeName", "")}"'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if fully_bound(claim):
            continue
        if spec.get("volumeName") or not rules.is_delay_binding(claim, classes or {}):
            unbound = True
    return UNBOUND_IMMEDIATE if unbound else ""


def fully_bound(claim: Obj) -> bool:
    """isPVCFullyBound: a volume named and the binding completed (the PV controller's annotation); claims of
    an older server, bound without the annotation, count when their phase is Bound."""
    spec = claim.get("spec") or {}
    return bool(spec.get("volumeName")) and (bool(rules.annotations(claim).get(rules.ANN_BIND_COMPLETED))
                                             or (claim.get("status") or {}).get("phase") == "Bound")


def prefilter_message(nodes: int, reason: str) -> str:
    """FitError for a PreFilter rejection (UnschedulableAndUnresolvable on every node: preemption cannot help)."""
    return (f"0/{nodes} nodes are available: {reason}. preemption: 0/{nodes} nodes are available: "
            f"{nodes} Preemption is not helpful for scheduling.")


def fit_error(pod: Obj, nodes: Iterable[NodeInfo], volume_reasons: dict[str, list[str]],
              reserved: dict[str, Resources] | None = None) -> Decision:
    """The unschedulable Decision when no node fits and VolumeBinding refused some, as predicates.schedule
    builds it (failures by node for preemption, the FitError text, the dry run's summary): a node's reasons are
    those of the first failing filter (VolumeBinding runs after NodeResourcesFit and NodePorts)."""
    facts = pod_facts(pod)
    reserved = reserved or {}
    failures: dict[str, list[str]] = {}
    counts: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    total = 0
    for info in nodes:
        if info.node is None:
            continue
        total += 1
        reasons = filter_reasons(facts, info, reserved.get(info.name)) or volume_reasons.get(info.name, [])
        if not reasons:
            continue
        failures[info.name] = reasons
        counts.update(reasons)
        preemption[NOT_HELPFUL if unresolvable(reasons) else NO_VICTIMS] += 1
    fit_message = nodes_available(total, counts)
    if facts.spec.get("preemptionPolicy") == "Never":
        return Decision(None, f"{fit_message} preemption: {NEVER_PREEMPTS}", failures, fit_message)
    return Decision(None, f"{fit_message} preemption: {nodes_available(total, preemption)}", failures, fit_message)


def _topology_allows(storage_class: Obj, labels: dict[str, str]) -> bool:
    """MatchTopologySelectorTerms: no terms, or one whose every expression the node's labels satisfy."""
    terms = storage_class.get("allowedTopologies") or []
    if not terms:
        return True
    return any(all(labels.get(e.get("key", "")) in (e.get("values") or [])
                   for e in (term.get("matchLabelExpressions") or [])) for term in terms if isinstance(term, dict))


def node_storage(node: Obj | None) -> Fraction | None:
    status = (node or {}).get("status") or {}
    return resource_list(status.get("allocatable") or status.get("capacity")).get("ephemeral-storage")


@dataclass
class PodVolumes:
    """What a node needs done for a pod: static volumes to pre-bind, claims to provision there."""
    static: list[tuple[Obj, Obj]] = field(default_factory=list)     # (volume, claim)
    provision: list[Obj] = field(default_factory=list)               # claims


class BindingFailed(Exception):
    pass


class VolumeBinding:
    def __init__(self, api: Any, informers: SharedInformers, changed: Callable[[], None]):
        self.api = api
        self.claims_registry = api.registry("", "persistentvolumeclaims")
        self.volumes_registry = api.registry("", "persistentvolumes")
        self.claims = informers.informer(self.claims_registry, lambda *_: changed())
        self.volumes = informers.informer(self.volumes_registry, lambda *_: changed())
        self.classes = informers.informer(api.registry("storage.k8s.io", "storageclasses"), lambda *_: changed())
        self.assumed_volumes: dict[str, str] = {}     # volume name → claim key it is being pre-bound to
        self.assumed_nodes: dict[str, tuple[str, Fraction]] = {}   # claim key → (selected node, size)

    def informers(self) -> list:
        return [self.claims, self.volumes, self.classes]

    def _classes(self) -> dict[str, Obj]:
        return {c["metadata"]["name"]: c for c in self.classes.cache.values()}

    def _claims(self, pod: Obj) -> list[Obj]:
        namespace = pod["metadata"].get("namespace", "")
        return [c for name in claim_names(pod) if (c := self.claims.cache.get(f"{namespace}/{name}")) is not None]

    def prefilter(self, pod: Obj) -> str:
        if not claim_names(pod):
            return ""
        return claim_problem(pod, self.claims.cache, self._classes())

    def selected_node(self, claim: Obj) -> str | None:
        assumed = self.assumed_nodes.get(rules.claim_key(claim))
        return assumed[0] if assumed else rules.annotations(claim).get(rules.ANN_SELECTED_NODE)

    def _pending_on(self, node_name: str) -> Fraction:
        """Storage of claims sent to the node whose local-path volume does not exist yet."""
        total = Fraction(0)
        counted = set()
        for key, (node, size) in self.assumed_nodes.items():
            if node == node_name:
                total += size
                counted.add(key)
        for key, claim in self.claims.cache.items():
            if key in counted or (claim.get("spec") or {}).get("volumeName") or \
                    rules.annotations(claim).get(rules.ANN_SELECTED_NODE) != node_name or \
                    rules.annotations(claim).get(rules.ANN_STORAGE_PROVISIONER) != local_path.PROVISIONER:
                continue
            if f"/pvc-{claim['metadata'].get('uid')}" not in self.volumes.cache:
                total += storage_request(claim)
        return total

    def filter(self, pod: Obj, nodes: list[NodeInfo]) -> tuple[dict[str, list[str]], dict[str, PodVolumes]]:
        """(node → VolumeBinding's reasons, for the nodes it refuses; node → PodVolumes, for the others)."""
        claims = self._claims(pod) if claim_names(pod) else []
        if not claims:
            return {}, {}
        classes = self._classes()
        bound = [c for c in claims if fully_bound(c)]
        to_bind = [c for c in claims if not fully_bound(c)]
        volumes = list(self.volumes.cache.values())
        refused: dict[str, list[str]] = {}
        plans: dict[str, PodVolumes] = {}
        for info in nodes:
            if info.node is None:
                continue
            reasons, plan = self._fits(info, bound, to_bind, volumes, classes)
            if reasons:
                refused[info.name] = reasons
            else:
                plans[info.name] = plan
        return refused, plans

    def _fits(self, info: NodeInfo, bound: list[Obj], to_bind: list[Obj], volumes: list[Obj],
              classes: dict[str, Obj]) -> tuple[list[str], PodVolumes]:
        """FindPodVolumes for one node."""
        plan = PodVolumes()
        node_conflict = pv_missing = bind_conflict = no_space = False
        for claim in bound:
            volume = self.volumes.cache.get(f"/{claim['spec']['volumeName']}")
            if volume is None:
                pv_missing = True
            elif not rules.node_affinity_matches(volume, info.labels, info.name):
                node_conflict = True
        provisions = []
        taken = set(self.assumed_volumes)
        for claim in to_bind:
            selected = self.selected_node(claim)
            if selected is not None:
                if selected != info.name:
                    bind_conflict = True
                    break
                provisions.append(claim)
                continue
            volume = rules.find_matching_volume(claim, volumes, True, (info.labels, info.name),
                                                frozenset(taken))
            if volume is not None:
                taken.add(volume["metadata"]["name"])
                plan.static.append((volume, claim))
            else:
                provisions.append(claim)
        if not bind_conflict:
            new_local = Fraction(0)
            for claim in provisions:
                storage_class = classes.get(claim_class(claim))
                if storage_class is None or storage_class.get("provisioner") == NO_PROVISIONER or \
                        not _topology_allows(storage_class, info.labels):
                    bind_conflict = True
                    break
                if storage_class.get("provisioner") == local_path.PROVISIONER:
                    if not rules.annotations(info.node).get(local_path.DIR_ANNOTATION):
                        no_space = True
                    if self.selected_node(claim) is None:
                        new_local += storage_request(claim)
            if new_local and not no_space:
                allocatable = node_storage(info.node)
                used = rules.local_path_used(volumes, info.name) + self._pending_on(info.name)
                if allocatable is not None and used + new_local > allocatable:
                    no_space = True
            plan.provision = provisions
        reasons = [r for r, failed in ((REASON_NODE_CONFLICT, node_conflict), (REASON_BIND_CONFLICT, bind_conflict),
                                       (REASON_NOT_ENOUGH_SPACE, no_space), (REASON_PV_NOT_EXIST, pv_missing))
                   if failed]
        return reasons, plan

    # reserve / prebind ---------------------------------------------------------------------------
    def assume(self, plan: PodVolumes | None, node_name: str) -> None:
        if plan is None:
            return
        for volume, claim in plan.static:
            self.assumed_volumes[volume["metadata"]["name"]] = rules.claim_key(claim)
        for claim in plan.provision:
            self.assumed_nodes.setdefault(rules.claim_key(claim), (node_name, storage_request(claim)))

    def forget(self, plan: PodVolumes | None) -> None:
        if plan is None:
            return
        for volume, _claim in plan.static:
            self.assumed_volumes.pop(volume["metadata"]["name"], None)
        for claim in plan.provision:
            self.assumed_nodes.pop(rules.claim_key(claim), None)

    async def bind(self, pod: Obj, node_name: str, plan: PodVolumes | None,
                   wanted: Callable[[], bool] = lambda: True) -> None:
        """BindPodVolumes: the API writes, then wait for the PV controller to bind every claim of the pod.
        Raises BindingFailed (the scheduler puts the pod back in the queue); `wanted()` turning False (the pod
        was deleted meanwhile) ends the wait too."""
        if plan is None:
            return
        try:
            for volume, claim in plan.static:
                await self._prebind(volume, claim)
            for claim in plan.provision:
                if rules.annotations(claim).get(rules.ANN_SELECTED_NODE) != node_name:
                    await self._select_node(claim, node_name)
            await self._wait_bound(pod, node_name, wanted)
        except errors.APIError as exc:
            raise BindingFailed(exc.message) from None
        finally:
            self.forget(plan)

    async def _prebind(self, volume: Obj, claim: Obj) -> None:
        meta = claim["metadata"]

        def prebind(current: Obj) -> Obj:
            spec = current.setdefault("spec", {})
            ref = spec.get("claimRef") or {}
            if ref and not rules.is_bound_to_claim(current, claim):
                raise BindingFailed(f'volume "{current["metadata"]["name"]}" is already bound to claim '
                                    f'"{rules.claim_ref_key(ref)}"')
            spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"], "name": meta["name"],
                                "uid": meta["uid"], "apiVersion": "v1",
                                "resourceVersion": meta.get("resourceVersion", "")}
            current["metadata"].setdefault("annotations", {})[rules.ANN_BOUND_BY_CONTROLLER] = "yes"
            return current
        if await modify(self.volumes_registry, volume, prebind) is None:
            raise BindingFailed(f'persistentvolume "{volume["metadata"]["name"]}" not found')

    async def _select_node(self, claim: Obj, node_name: str) -> None:
        def select(current: Obj) -> Obj:
            current["metadata"].setdefault("annotations", {})[rules.ANN_SELECTED_NODE] = node_name
            return current
        if await modify(self.claims_registry, claim, select) is None:
            raise BindingFailed(f'persistentvolumeclaim "{claim["metadata"]["name"]}" not found')

    async def _wait_bound(self, pod: Obj, node_name: str, wanted: Callable[[], bool]) -> None:
        """checkBindings until every claim is fully bound; a claim gone, sent elsewhere or whose local-path
        volume its node failed to create ends the wait."""
        namespace = pod["metadata"].get("namespace", "")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BIND_TIMEOUT
        while True:
            waiting = False
            for name in claim_names(pod):
                claim = self.claims.cache.get(f"{namespace}/{name}")
                if claim is None:
                    raise BindingFailed(f'persistentvolumeclaim "{name}" not found')
                if fully_bound(claim):
                    continue
                waiting = True
                selected = rules.annotations(claim).get(rules.ANN_SELECTED_NODE)
                if selected is not None and selected != node_name:
                    raise BindingFailed(f"selectedNode annotation value {selected!r} not set to scheduled node "
                                        f"{node_name!r}")
                volume = self.volumes.cache.get(f"/pvc-{claim['metadata'].get('uid')}")
                status = (volume or {}).get("status") or {}
                if status.get("reason") == local_path.REASON_PROVISIONING_FAILED:
                    raise BindingFailed(f"provisioning failed for PVC {name!r}: {status.get('message', '')}")
            if not waiting:
                return
            if not wanted():
                raise BindingFailed("the pod is no longer pending")
            if loop.time() > deadline:
                raise BindingFailed("context deadline exceeded")
            await asyncio.sleep(BIND_POLL)
