"""The scheduler task: informers → cache → decisions; bindings written concurrently through the API.

Queueing follows kube-scheduler's shape: pending pods are tried in priority order; a pod found
unschedulable waits until something that could make room happens (a node added or changed, a
bound pod deleted or finished) or until the periodic retry; a chosen node is "assumed" at once and
the binding runs in the background (at most BIND_CONCURRENCY at a time), so the next decision
does not wait for storage. Events are posted by a background queue after the bindings.
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
from apiserver.scheduler.cache import ClusterCache
from apiserver.scheduler.predicates import TERMINAL_PHASES, schedule
from apiserver.scheduler.queue import RetryQueue
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
RETRY_INTERVAL = 10.0       # the loop wakes at least this often
# Retries that came due are gathered at most this often (kube-scheduler flushes its backoff queue every
# second): pods failed one after another have staggered deadlines, and waking for each would scan the
# whole queue per pod (10k pending pods without a node: a core busy).
BACKOFF_FLUSH_PERIOD = 1.0
BIND_CONCURRENCY = 32
EVENT_WORKERS = 2


def is_pending(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod["metadata"].get("deletionTimestamp") and not spec.get("schedulingGates")
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES)


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
        self._events: asyncio.Queue[tuple[Obj, str, str, str]] = asyncio.Queue()
        self._binds_idle = asyncio.Event()   # no pass running and no binding in flight
        self._binds_idle.set()
        self._passing = False
        self.pods = informers.informer(api.pods, self._on_pod)
        self.nodes = informers.informer(api.nodes, self._on_node)
        self.services = informers.informer(api.services, lambda _type, _service: None)

    # informer callbacks (synchronous, on the loop) -----------------------------------------------
    def _on_pod(self, event_type: str, pod: Obj) -> None:
        uid = pod["metadata"].get("uid")
        if event_type == "DELETED":
            held = self.cache.node_of(uid) is not None
            self.cache.delete_pod(pod)
            self.pending.pop(uid, None)
            self.unschedulable.pop(uid, None)
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
        else:
            self.pending.pop(uid, None)
            self.unschedulable.pop(uid, None)
            self.retries.forget(uid)
            if was_holding and self.cache.node_of(uid) is None:
                self._cluster_changed()   # a bound pod finished: its resources are free again

    def _on_node(self, event_type: str, node: Obj) -> None:
        if event_type == "DELETED":
            self.cache.remove_node(node["metadata"]["name"])
        else:
            self.cache.set_node(node)
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
            for informer in (self.pods, self.nodes, self.services):
                await informer.synced.wait()
            while True:
                self._wake.clear()
                try:
                    await self.schedule_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop survives and retries
                    log.exception("scheduling pass failed")
                deadline = self.retries.next_deadline()
                timeout = RETRY_INTERVAL if deadline is None else \
                    min(RETRY_INTERVAL, max(BACKOFF_FLUSH_PERIOD, deadline - self.monotonic()))
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in [*tasks, *self._binding]:
                task.cancel()
            await asyncio.gather(*tasks, *self._binding, return_exceptions=True)

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

    async def schedule_pending(self) -> None:
        now = self.monotonic()
        queue = sorted((pod for uid, pod in self.pending.items()
                        if uid not in self.cache.assumed and self.retries.ready(uid, now)), key=_priority_order)
        self._binds_idle.clear()            # events wait for the pass and its bindings
        self._passing = True
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
            decision = schedule(pod, self.cache.ready_nodes(), self._service_selectors(pod), self._rng.choice)
            if decision.node_name is None:
                CONTROL_LOOPS.observe_scheduling(time.perf_counter() - attempt_started, "unschedulable")
                self.retries.failed(uid, self.monotonic())
                await self._unschedulable(pod, decision.message)
                continue
            self.cache.assume(pod, decision.node_name)
            self.unschedulable.pop(uid, None)
            self.retries.forget(uid)
            await self._binds.acquire()
            task = asyncio.create_task(self._bind(pod, decision.node_name, attempt_started), name=f"bind-{uid}")
            self._binding.add(task)
            task.add_done_callback(self._bind_done)

    def _bind_done(self, task: asyncio.Task) -> None:
        self._binding.discard(task)
        self._binds.release()
        if not self._binding and not self._passing:
            self._binds_idle.set()

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

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        if self.unschedulable.get(meta["uid"]) == message:
            return
        self.unschedulable[meta["uid"]] = message
        now = rfc3339(self.api.clock())

        def mark(current: Obj) -> Obj:
            if current["metadata"].get("uid") != meta["uid"] or (current.get("spec") or {}).get("nodeName"):
                return current
            set_condition(current.setdefault("status", {}), {"type": "PodScheduled", "status": "False",
                                                             "reason": "Unschedulable", "message": message}, now)
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
