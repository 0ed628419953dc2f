"""The scheduler task: informers on pods and nodes, bind pending pods through the API's binding path."""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict

from apiserver import errors
from apiserver.api import API
from apiserver.informer import Informer
from apiserver.kinds.base import Obj
from apiserver.timeutil import rfc3339
from apiserver.kinds.pods import set_condition
from apiserver.scheduler.predicates import TERMINAL_PHASES, schedule

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
RETRY_INTERVAL = 10.0


def is_pending(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (not spec.get("nodeName") and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not pod["metadata"].get("deletionTimestamp") and not spec.get("schedulingGates")
            and (pod.get("status") or {}).get("phase") not in TERMINAL_PHASES)


class Scheduler:
    def __init__(self, api: API):
        self.api = api
        self._wake = asyncio.Event()
        self.pods = Informer(api.pods, self._on_pod)
        self.nodes = Informer(api.nodes, self._on_node)
        self._reported: dict[str, str] = {}  # pod uid -> last unschedulable message
        # Bindings written but not yet seen through the informer (pod uid -> node name), so that a
        # pass running before the watch event arrives neither rebinds the pod nor forgets its requests.
        self._assumed: dict[str, str] = {}

    def _on_pod(self, event_type: str, pod: Obj) -> None:
        uid = pod["metadata"].get("uid")
        if event_type == "DELETED":
            self._reported.pop(uid, None)
        if event_type == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self._assumed.pop(uid, None)
        if is_pending(pod) or event_type == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self._wake.set()

    def _on_node(self, event_type: str, node: Obj) -> None:
        self._wake.set()

    async def run(self) -> None:
        tasks = [asyncio.create_task(self.pods.run(), name="scheduler-pods"),
                 asyncio.create_task(self.nodes.run(), name="scheduler-nodes")]
        try:
            await self.pods.synced.wait()
            await self.nodes.synced.wait()
            while True:
                self._wake.clear()
                try:
                    await self.schedule_pending()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - the loop survives and retries
                    log.exception("scheduling pass failed")
                try:
                    await asyncio.wait_for(self._wake.wait(), RETRY_INTERVAL)
                except asyncio.TimeoutError:
                    pass
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _pods_by_node(self) -> dict[str, list[Obj]]:
        by_node: dict[str, list[Obj]] = defaultdict(list)
        for pod in self.pods.cache.values():
            node_name = (pod.get("spec") or {}).get("nodeName") or self._assumed.get(pod["metadata"].get("uid"))
            if node_name:
                by_node[node_name].append(pod)
        return by_node

    async def schedule_pending(self) -> None:
        pending = sorted((p for p in self.pods.cache.values()
                          if is_pending(p) and p["metadata"].get("uid") not in self._assumed),
                         key=lambda p: (-(p["spec"].get("priority") or 0), p["metadata"].get("creationTimestamp", "")))
        if not pending:
            return
        nodes = list(self.nodes.cache.values())
        by_node = self._pods_by_node()
        for pod in pending:
            decision = schedule(pod, nodes, by_node)
            if decision.node_name is None:
                await self._unschedulable(pod, decision.message)
                continue
            if await self._bind(pod, decision.node_name):
                by_node[decision.node_name].append(pod)

    async def _bind(self, pod: Obj, node_name: str) -> bool:
        meta = pod["metadata"]
        binding = {"apiVersion": "v1", "kind": "Binding",
                   "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                   "target": {"apiVersion": "v1", "kind": "Node", "name": node_name}}
        try:
            bound = await self.api.bind(meta["namespace"], meta["name"], binding)
        except errors.APIError as exc:
            log.info("binding failed pod=%s/%s node=%s error=%s", meta["namespace"], meta["name"], node_name, exc)
            return False
        self._reported.pop(meta["uid"], None)
        if not (self.pods.cache.get(f"{meta['namespace']}/{meta['name']}") or {}).get("spec", {}).get("nodeName"):
            self._assumed[meta["uid"]] = node_name
        log.info("scheduled pod=%s/%s node=%s", meta["namespace"], meta["name"], node_name)
        await self.api.record_event(bound, "Normal", "Scheduled",
                                    f"Successfully assigned {meta['namespace']}/{meta['name']} to {node_name}",
                                    SCHEDULER_NAME)
        return True

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        meta = pod["metadata"]
        if self._reported.get(meta["uid"]) == message:
            return
        now = rfc3339(self.api.clock())

        def mark(current: Obj) -> Obj:
            set_condition(current.setdefault("status", {}), {"type": "PodScheduled", "status": "False",
                                                             "reason": "Unschedulable", "message": message}, now)
            return current
        try:
            await self.api.pods.guaranteed_update(meta["namespace"], meta["name"], mark, subresource="status")
        except errors.APIError as exc:
            log.info("could not mark pod unschedulable pod=%s/%s error=%s", meta["namespace"], meta["name"], exc)
            return
        self._reported[meta["uid"]] = message
        log.info("pod unschedulable pod=%s/%s reason=%s", meta["namespace"], meta["name"], message)
        await self.api.record_event(pod, "Warning", "FailedScheduling", message, SCHEDULER_NAME)
