"""The scheduler task: informers → cache → decisions; bindings written concurrently through the API.

Queueing follows kube-scheduler's shape: pending pods are tried in priority order; a pod found
unschedulable waits until something that could make room happens (a node added, or changed in what
the filters read: not a status heartbeat; a bound pod deleted or finished) or until the periodic
retry; once such a change came, it is retried after its backoff, or as soon as no other pod is ready
(SchedulerPopFromBackoffQ). A chosen node is "assumed" at once and the binding runs in the background
(at most BIND_CONCURRENCY at a time), so the next decision does not wait for storage. Events are
posted by a background queue after the bindings.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time

from apiserver import errors
from apiserver.api import API
from apiserver.control_loop_metrics import CONTROL_LOOPS
from apiserver.informer import SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.kinds.pods import set_condition
from apiserver.registry import DeleteOptions
from apiserver.scheduler import preemption
from apiserver.scheduler.cache import ClusterCache
from apiserver.scheduler.predicates import TERMINAL_PHASES, Decision, NodeInfo, Resources, schedule
from apiserver.scheduler.queue import RetryQueue
from apiserver.scheduler.volumes import BindingFailed, PodVolumes, VolumeBinding, fit_error, prefilter_message
from shipmate.timeutil import rfc3339
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
RETRY_INTERVAL = 10.0       # the loop wakes at least this often
# Retries that came due are gathered at most this often (kube-scheduler flushes its backoff queue every
# second): pods failed one after another have staggered deadlines, and waking for each would scan the
# whole queue per pod (10k pending pods without a node: a core busy).
BACKOFF_FLUSH_PERIOD = 1.0
BIND_CONCURRENCY = 32
# Events wait behind the bindings; then they go out as wide as bindings do, so that a burst's events share
# storage commits instead of taking one round trip per two events.
EVENT_WORKERS = BIND_CONCURRENCY


def is_pending(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod["metadata"].get("deletionTimestamp") and not spec.get("schedulingGates")
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES)


def _condition_statuses(node: Obj) -> dict:
    return {c.get("type"): c.get("status") for c in (node.get("status") or {}).get("conditions") or ()
            if isinstance(c, dict)}


def scheduling_properties_changed(old: Obj, new: Obj) -> bool:
    """Whether a node update is a cluster event for the unschedulable pods (upstream's
    nodeSchedulingPropertiesChange: unschedulable, allocatable, labels, taints, condition statuses,
    annotations); status heartbeats are not."""
    old_meta, new_meta = old.get("metadata") or {}, new.get("metadata") or {}
    old_status, new_status = old.get("status") or {}, new.get("status") or {}
    return (old.get("spec") != new.get("spec") or old_meta.get("labels") != new_meta.get("labels")
            or old_meta.get("annotations") != new_meta.get("annotations")
            or old_status.get("allocatable") != new_status.get("allocatable")
            or old_status.get("capacity") != new_status.get("capacity")
            or _condition_statuses(old) != _condition_statuses(new))


def _priority_order(pod: Obj) -> tuple:
    return (-((pod.get("spec") or {}).get("priority") or 0), pod["metadata"].get("creationTimestamp", ""),
            object_key(pod))


class Scheduler:
    def __init__(self, api: API, informers: SharedInformers, rng: random.Random | None = None):
        self.api = api
        self.cache = ClusterCache()
        self.pending: dict[str, Obj] = {}          # uid -> pending pod (latest seen)
        self.unschedulable: dict[str, str] = {}    # uid -> message last reported
        self.retries = RetryQueue()
        self.monotonic = time.monotonic
        self._wake = asyncio.Event()
        self._rng = rng or random.Random()
        self._binds = asyncio.Semaphore(BIND_CONCURRENCY)
        self._binding: set[asyncio.Task] = set()
        self._volume_binds: set[asyncio.Task] = set()   # pods waiting for their volumes before binding
        self._events: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._binds_idle = asyncio.Event()   # no pass running and no binding in flight
        self._binds_idle.set()
        self._passing = False
        self.pods = informers.informer(api.pods, self._on_pod)
        self.nodes = informers.informer(api.nodes, self._on_node)
        self.services = informers.informer(api.services, lambda _type, _service, _old: None)
        self.volumes = VolumeBinding(api, informers, self._cluster_changed)   # claims, volumes, classes
        self.budgets = informers.informer(api.registry("policy", "poddisruptionbudgets"),
                                          lambda _type, _budget, _old: None)
        self.nominated: dict[str, str] = {}        # uid -> node a pending pod is nominated to (preemption)
        self._lowest_priority: int | None = None   # of the pods on nodes, at the start of a pass

    # informer callbacks (synchronous, on the loop) -----------------------------------------------
    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        uid = pod["metadata"].get("uid")
        if event_type == "DELETED":
            held = self.cache.node_of(uid) is not None
            self.cache.delete_pod(pod)
            self.pending.pop(uid, None)
            self.unschedulable.pop(uid, None)
            self.nominated.pop(uid, None)
            self.retries.forget(uid)
            if held:
                self._cluster_changed()
            return
        was_holding = self.cache.node_of(uid) is not None
        self.cache.update_pod(pod)
        if is_pending(pod):
            if uid not in self.pending:
                self._wake.set()
            self.pending[uid] = pod
            nominated = (pod.get("status") or {}).get("nominatedNodeName")
            if nominated:
                self.nominated[uid] = nominated
        else:
            self.pending.pop(uid, None)
            self.unschedulable.pop(uid, None)
            self.nominated.pop(uid, None)
            self.retries.forget(uid)
            if was_holding and self.cache.node_of(uid) is None:
                self._cluster_changed()   # a bound pod finished: its resources are free again

    def _on_node(self, event_type: str, node: Obj, old: Obj | None) -> None:
        if event_type == "DELETED":
            self.cache.remove_node(node["metadata"]["name"])
        else:
            self.cache.set_node(node)
            if event_type == "MODIFIED" and old is not None and not scheduling_properties_changed(old, node):
                return      # a heartbeat: nothing a pod was refused for changed
        self._cluster_changed()

    def _cluster_changed(self) -> None:
        """Something that may make room: unschedulable pods get another attempt (after their backoff)."""
        self.retries.cluster_changed()
        self._wake.set()

    # the loop ----------------------------------------------------------------------------------
    async def run(self) -> None:
        """Runs while the shared informers (started by the caller) feed it."""
        tasks = [asyncio.create_task(self._post_events(), name="scheduler-events") for _ in range(EVENT_WORKERS)]
        try:
            for informer in (self.pods, self.nodes, self.services, self.budgets, *self.volumes.informers()):
                await informer.synced.wait()
            while True:
                self._wake.clear()
                try:
                    await self.schedule_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop survives and retries
                    log.exception("scheduling pass failed")
                else:
                    if self._backoff_queue():
                        continue    # the pods a change moved are next, backing off or not (PopFromBackoffQ)
                deadline = self.retries.next_deadline()
                timeout = RETRY_INTERVAL if deadline is None else \
                    min(RETRY_INTERVAL, max(BACKOFF_FLUSH_PERIOD, deadline - self.monotonic()))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            await stop_tasks([*tasks, *self._volume_binds, *self._binding])

    def _service_selectors(self, pod: Obj) -> list[dict[str, str]]:
        namespace = pod["metadata"].get("namespace")
        labels = pod["metadata"].get("labels") or {}
        selectors = []
        for service in self.services.cache.values():
            selector = (service.get("spec") or {}).get("selector")
            if selector and service["metadata"].get("namespace") == namespace and \
                    all(labels.get(k) == v for k, v in selector.items()):
                selectors.append(selector)
        return selectors

    def _backoff_queue(self) -> list[Obj]:
        """The pods a cluster change moved since they failed, earliest backoff window first, then by priority
        (upstream's backoff queue and its order)."""
        windows = self.retries.moved()
        waiting = [(windows[uid], _priority_order(pod), pod) for uid, pod in self.pending.items()
                   if uid in windows and uid not in self.cache.assumed] if windows else []
        waiting.sort(key=lambda item: item[:2])
        return [pod for _window, _order, pod in waiting]

    async def schedule_pending(self) -> None:
        """One pass over the pods ready for an attempt (upstream's activeQ, by priority); with none ready, over
        those still backing off after a change moved them (upstream pops its backoffQ when activeQ is empty)."""
        now = self.monotonic()
        queue = sorted((pod for uid, pod in self.pending.items()
                        if uid not in self.cache.assumed and self.retries.ready(uid, now)), key=_priority_order)
        if not queue:
            queue = self._backoff_queue()
        self._binds_idle.clear()            # events wait for the pass and its bindings
        self._passing = True
        self._lowest_priority = min((preemption.priority(p) for info in self.cache.nodes.values()
                                     for p in info.pods.values()), default=None)
        try:
            await self._schedule_queue(queue)
        finally:
            self._passing = False
            if not self._binding:
                self._binds_idle.set()

    async def _schedule_queue(self, queue: list[Obj]) -> None:
        for position, queued in enumerate(queue):
            if position % 8 == 0:
                await asyncio.sleep(0)      # let the informers apply what arrived (new nodes, bindings)
            uid = queued["metadata"]["uid"]
            pod = self.pending.get(uid)     # the newest version (the loop awaits between pods)
            if pod is None or uid in self.cache.assumed:
                continue
            attempt_started = time.perf_counter()
            nodes = self.cache.ready_nodes()
            problem = self.volumes.prefilter(pod) if nodes else ""
            reserved = self._reserved(pod)
            refused, plans = self.volumes.filter(pod, nodes) if nodes and not problem else ({}, {})
            decision = Decision(None, prefilter_message(len(nodes), problem)) if problem else \
                schedule(pod, [n for n in nodes if n.name not in refused] if refused else nodes,
                         self._service_selectors(pod), self._rng.choice, reserved, self.cache.charges.of(pod))
            if decision.node_name is None and refused:
                decision = fit_error(pod, nodes, refused, reserved)   # VolumeBinding refused some nodes
            if decision.node_name is None:
                CONTROL_LOOPS.observe_scheduling(time.perf_counter() - attempt_started, "unschedulable")
                self.retries.failed(uid, self.monotonic())
                message, nomination = await self._preempt(pod, nodes, decision, reserved)
                await self._unschedulable(pod, message, nomination)
                continue
            self.cache.assume(pod, decision.node_name)
            volumes = plans.get(decision.node_name)
            self.volumes.assume(volumes, decision.node_name)
            self.unschedulable.pop(uid, None)
            self.retries.forget(uid)
            if volumes is not None and (volumes.static or volumes.provision):
                # VolumeBinding's PreBind may wait for a provisioner: not counted as a binding in flight.
                waiting = asyncio.create_task(self._bind_volumes(pod, decision.node_name, attempt_started, volumes),
                                              name=f"bind-volumes-{uid}")
                self._volume_binds.add(waiting)
                waiting.add_done_callback(self._volume_binds.discard)
                continue
            await self._binds.acquire()
            task = asyncio.create_task(self._bind(pod, decision.node_name, attempt_started), name=f"bind-{uid}")
            self._binding.add(task)
            task.add_done_callback(self._bind_done)

    # preemption (pure rules: scheduler/preemption.py) ---------------------------------------------------------
    def _reserved(self, pod: Obj) -> dict[str, Resources]:
        """What pods nominated to each node with at least this pod's priority hold there."""
        reserved: dict[str, Resources] = {}
        own_uid, own = pod["metadata"]["uid"], preemption.priority(pod)
        for uid, node_name in self.nominated.items():
            other = self.pending.get(uid)
            if uid == own_uid or other is None or preemption.priority(other) < own:
                continue
            reserved[node_name] = reserved.get(node_name, Resources()) + self.cache.charges.of(other)[0]
        return reserved

    async def _preempt(self, pod: Obj, nodes: list[NodeInfo], decision: Decision,
                       reserved: dict[str, Resources]) -> tuple[str, str | None]:
        """PostFilter: the message to report and the pod's nominated node (None: leave it, "": clear it)."""
        if not decision.failures:
            return decision.message, None
        if (pod.get("spec") or {}).get("preemptionPolicy") == "Never":
            return decision.message, None
        if self._lowest_priority is None or preemption.priority(pod) <= self._lowest_priority:
            return decision.message, ""     # no node has pods to remove: the dry run's answer is in the message
        infos = {info.name: info for info in nodes}
        nominated = (pod.get("status") or {}).get("nominatedNodeName") or ""
        why = preemption.ineligible(pod, infos, preemption.unresolvable(decision.failures.get(nominated, [])))
        if why:
            return f"{decision.fit_message} preemption: {why}", None
        candidates, statuses = preemption.find_candidates(pod, nodes, decision.failures,
                                                          list(self.budgets.cache.values()), reserved)
        chosen = preemption.pick_candidate(candidates)
        if chosen is None:
            return f"{decision.fit_message} preemption: {preemption.no_candidate_message(len(nodes), statuses)}", ""
        await self._evict_victims(pod, chosen)
        return decision.fit_message, chosen.node

    async def _evict_victims(self, pod: Obj, chosen: preemption.Candidate) -> None:
        """prepareCandidate: each victim gets DisruptionTarget (PreemptionByScheduler) and is deleted gracefully;
        lower-priority pods nominated to the node lose their nomination."""
        now = rfc3339(self.api.clock())
        for victim in chosen.victims:
            meta = victim["metadata"]

            def mark(current: Obj, uid: str = meta["uid"]) -> Obj:
                if current["metadata"].get("uid") == uid:
                    set_condition(current.setdefault("status", {}), {
                        "type": "DisruptionTarget", "status": "True", "reason": preemption.PREEMPTION_REASON,
                        "message": f"{SCHEDULER_NAME}: preempting to accommodate a higher priority pod"}, now)
                return current
            try:
                await self.api.pods.guaranteed_update(meta["namespace"], meta["name"], mark, subresource="status")
                await self.api.delete(self.api.pods, meta["namespace"], meta["name"],
                                      DeleteOptions(precondition_uid=meta["uid"]))
            except errors.APIError as exc:
                if exc.code not in (404, 409):
                    log.info("could not preempt pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)
                continue
            log.info("preempted pod=%s/%s node=%s for=%s/%s", meta["namespace"], meta["name"], chosen.node,
                     pod["metadata"]["namespace"], pod["metadata"]["name"])
            self._events.put_nowait((victim, "Normal", "Preempted",
                                     f"Preempted by pod {pod['metadata']['uid']} on node {chosen.node}"))
        waiting = [self.pending[uid] for uid in self.nominated if uid in self.pending]
        for other in preemption.lower_priority_nominated(pod, chosen.node, waiting):
            self.nominated.pop(other["metadata"]["uid"], None)
            await self._set_nomination(other, "")
        self.nominated[pod["metadata"]["uid"]] = chosen.node

    async def _set_nomination(self, pod: Obj, node_name: str) -> None:
        meta = pod["metadata"]

        def nominate(current: Obj) -> Obj:
            if current["metadata"].get("uid") == meta["uid"] and not (current.get("spec") or {}).get("nodeName"):
                status = current.setdefault("status", {})
                if node_name:
                    status["nominatedNodeName"] = node_name
                else:
                    status.pop("nominatedNodeName", None)
            return current
        try:
            await self.api.pods.guaranteed_update(meta["namespace"], meta["name"], nominate, subresource="status")
        except errors.APIError as exc:
            log.info("could not set nominated node pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)

    def _bind_done(self, task: asyncio.Task) -> None:
        self._binding.discard(task)
        self._binds.release()
        if not self._binding and not self._passing:
            self._binds_idle.set()

    async def _bind_volumes(self, pod: Obj, node_name: str, attempt_started: float, volumes: PodVolumes) -> None:
        """VolumeBinding's PreBind (claims pre-bound or sent to the node's provisioner, then bound), then the
        pod's binding; a failure puts the pod back in the queue."""
        meta = pod["metadata"]
        try:
            await self.volumes.bind(pod, node_name, volumes, lambda: meta["uid"] in self.pending)
        except BindingFailed as exc:
            CONTROL_LOOPS.observe_scheduling(time.perf_counter() - attempt_started, "error")
            self.cache.forget_assumed(meta["uid"])
            self.retries.failed(meta["uid"], self.monotonic())
            self._wake.set()
            if meta["uid"] in self.pending:
                await self._unschedulable(pod, f'running PreBind plugin "VolumeBinding": binding volumes: {exc}')
            return
        await self._binds.acquire()
        self._binds_idle.clear()
        task = asyncio.create_task(self._bind(pod, node_name, attempt_started), name=f"bind-{meta['uid']}")
        self._binding.add(task)
        task.add_done_callback(self._bind_done)

    async def _bind(self, pod: Obj, node_name: str, attempt_started: float) -> None:
        """`attempt_started`: perf_counter() when the decision began (attempt = algorithm + binding)."""
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            bound = await self.api.bind(meta["namespace"], meta["name"], binding)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the pod goes back to the queue
            CONTROL_LOOPS.observe_scheduling(time.perf_counter() - attempt_started, "error")
            log.info("binding failed pod=%s/%s node=%s error=%s", meta["namespace"], meta["name"], node_name, exc)
            self.cache.forget_assumed(meta["uid"])
            self._wake.set()
            return
        CONTROL_LOOPS.observe_scheduling(time.perf_counter() - attempt_started, "scheduled")
        log.debug("scheduled pod=%s/%s node=%s", meta["namespace"], meta["name"], node_name)
        self._events.put_nowait((bound, "Normal", "Scheduled",
                                 f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}"))

    async def _unschedulable(self, pod: Obj, message: str, nomination: str | None = None) -> None:
        """PodScheduled=False with the message; `nomination`: the node preemption nominated ("" clears it)."""
        meta = pod["metadata"]
        current_nomination = (pod.get("status") or {}).get("nominatedNodeName") or ""
        if nomination == "" and not current_nomination:
            nomination = None
        if self.unschedulable.get(meta["uid"]) == message and (nomination is None or nomination == current_nomination):
            return
        self.unschedulable[meta["uid"]] = message
        if nomination == "":
            self.nominated.pop(meta["uid"], None)
        now = rfc3339(self.api.clock())

        def mark(current: Obj) -> Obj:
            if current["metadata"].get("uid") != meta["uid"] or (current.get("spec") or {}).get("nodeName"):
                return current
            status = current.setdefault("status", {})
            set_condition(status, {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                   "message": message}, now)
            if nomination:
                status["nominatedNodeName"] = nomination
            elif nomination == "":
                status.pop("nominatedNodeName", None)
            return current
        try:
            await self.api.pods.guaranteed_update(meta["namespace"], meta["name"], mark, subresource="status")
        except errors.APIError as exc:
            log.info("could not mark pod unschedulable pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)
            return
        log.info("pod unschedulable pod=%s/%s reason=%s", meta["namespace"], meta["name"], message)
        self._events.put_nowait((pod, "Warning", "FailedScheduling", message))

    async def _post_events(self) -> None:
        """Events wait while a pass runs or bindings are in flight: binding first, reporting after."""
        while True:
            involved, event_type, reason, message = await self._events.get()
            await self._binds_idle.wait()
            await self.api.record_event(involved, event_type, reason, message, SCHEDULER_NAME)
