"""Probe workers, one asyncio task per (pod, container, probe type), and the results they publish
(kubelet's prober manager, worker and results manager).

Status generation reads `readiness()` / `started()`; a changed result calls `on_change(pod_uid)` so
the pod is synced again; a liveness or startup failure is acted on by `kill_unhealthy()`, which the
pod's sync calls before computing actions, so the normal restart-policy path restarts it."""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from cri.client import CRIClient
from cri.errors import NotFound

from agent.events import container_field_path
from agent.prober.handlers import ProbeOutcome, run_probe
from agent.prober.spec import (INITIAL_RESULT, ProbeSpec, ProbeSpecError, ProbeType, Result,
                               container_probes)
from agent.prober.thresholds import ThresholdCounter
from agent.runtime_state import ContainerPhase, PodRuntimeStatus

log = logging.getLogger(__name__)

Obj = dict[str, Any]
MINIMUM_GRACE_PERIOD = 2


class Recorder(Protocol):
    def event(self, obj: Obj, event_type: str, reason: str, message: str, field_path: str = "") -> None: ...


@dataclass(frozen=True)
class ContainerView:
    """What a worker needs to know about the newest container of its name."""
    container_id: str
    running: bool
    terminated: bool
    started_at: float               # seconds since the epoch
    pod_ip: str


@dataclass
class _PodProbes:
    pod: Obj
    specs: dict[tuple[str, ProbeType], ProbeSpec] = field(default_factory=dict)
    views: dict[str, ContainerView] = field(default_factory=dict)
    workers: dict[tuple[str, ProbeType], "_Worker"] = field(default_factory=dict)


class ProbeManager:
    def __init__(self, runtime: CRIClient, recorder: Recorder, on_change: Callable[[str], None],
                 node_ip: str = "", clock: Callable[[], float] = time.time):
        self.runtime = runtime
        self.recorder = recorder
        self.on_change = on_change
        self.node_ip = node_ip
        self.clock = clock
        self.started_monotonic = time.monotonic()
        self._pods: dict[str, _PodProbes] = {}
        self._results: dict[tuple[str, str, ProbeType], tuple[str, Result]] = {}

    # ------------------------------------------------------------------ feeding
    def sync_pod(self, pod: Obj, runtime: PodRuntimeStatus) -> None:
        """Starts workers for the pod's probes and tells them about its current containers."""
        uid = pod["metadata"]["uid"]
        specs: dict[tuple[str, ProbeType], ProbeSpec] = {}
        for container in (pod.get("spec") or {}).get("containers") or []:
            try:
                specs.update({(container["name"], s.probe_type): s for s in container_probes(container)})
            except ProbeSpecError as error:
                log.warning("probe ignored pod=%s container=%s error=%s", _name(pod), container["name"], error)
        if not specs:
            self.remove_pod(uid)
            return
        probes = self._pods.setdefault(uid, _PodProbes(pod))
        probes.pod, probes.specs = pod, specs
        sandbox = runtime.latest_sandbox()
        host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
        pod_ip = self.node_ip if host_network else (sandbox.ip if sandbox is not None else "")
        for name in {name for name, _ in specs}:
            latest = runtime.latest_container(name)
            view = None if latest is None else ContainerView(
                latest.id, latest.phase == ContainerPhase.RUNNING, latest.phase == ContainerPhase.EXITED,
                latest.started_at / 1e9, pod_ip)
            before = probes.views.get(name)
            if view is None:
                probes.views.pop(name, None)
            else:
                probes.views[name] = view
            if view is not None and (before is None or before.container_id != view.container_id
                                     or before.running != view.running):
                readiness = probes.workers.get((name, ProbeType.READINESS))
                if readiness is not None:
                    readiness.trigger.set()
        for key, spec in specs.items():
            existing = probes.workers.get(key)
            view = probes.views.get(key[0])
            # A worker that stopped (container exited for good) comes back only for a new container.
            if existing is None or (existing.finished and view is not None
                                    and view.container_id != existing.container_id):
                self._carry_over(pod, probes, key)
                worker = _Worker(self, uid, key[0], spec)
                worker.task = asyncio.create_task(worker.run(), name=f"probe-{key[1].value}-{uid}-{key[0]}")
                probes.workers[key] = worker
        for key in [k for k in probes.workers if k not in specs]:
            probes.workers.pop(key).stop()

    def _carry_over(self, pod: Obj, probes: _PodProbes, key: tuple[str, ProbeType]) -> None:
        """A new worker for a container that already runs (the agent restarted) starts from the
        readiness/started the pod's status shows for that very container, not from the initial
        value: a restart of the agent must not flap the pod's readiness."""
        name, probe_type = key
        uid, view = pod["metadata"]["uid"], probes.views.get(name)
        if view is None or probe_type == ProbeType.LIVENESS or (uid, name, probe_type) in self._results:
            return
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == name and status.get("containerID", "").endswith("://" + view.container_id):
                passed = status.get("ready") if probe_type == ProbeType.READINESS else status.get("started")
                if passed:
                    self._results[(uid, name, probe_type)] = (view.container_id, Result.SUCCESS)

    def remove_pod(self, uid: str) -> None:
        probes = self._pods.pop(uid, None)
        if probes is not None:
            for worker in probes.workers.values():
                worker.stop()
        for key in [k for k in self._results if k[0] == uid]:
            del self._results[key]

    async def stop(self) -> None:
        tasks = [w.task for p in self._pods.values() for w in p.workers.values() if w.task is not None]
        for uid in list(self._pods):
            self.remove_pod(uid)
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ reading
    def _current(self, uid: str, name: str, probe_type: ProbeType) -> Result | None:
        """The result for the container's current instance; None when it has no such probe."""
        probes = self._pods.get(uid)
        if probes is None or (name, probe_type) not in probes.specs:
            return None
        view = probes.views.get(name)
        stored = self._results.get((uid, name, probe_type))
        if view is None or stored is None or stored[0] != view.container_id:
            return Result.UNKNOWN
        return stored[1]

    def started(self, uid: str, name: str) -> bool:
        result = self._current(uid, name, ProbeType.STARTUP)
        return result is None or result == Result.SUCCESS

    def readiness(self, uid: str, name: str) -> bool:
        if not self.started(uid, name):
            return False
        result = self._current(uid, name, ProbeType.READINESS)
        return result is None or result == Result.SUCCESS

    def _set(self, uid: str, name: str, probe_type: ProbeType, container_id: str, result: Result) -> None:
        key = (uid, name, probe_type)
        if self._results.get(key) == (container_id, result) or uid not in self._pods:
            return
        self._results[key] = (container_id, result)
        log.info("probe result changed pod=%s container=%s probe=%s result=%s",
                 _name(self._pods[uid].pod), name, probe_type.value, result.value)
        self.on_change(uid)

    # ------------------------------------------------------------------ acting
    async def kill_unhealthy(self, pod: Obj, runtime: PodRuntimeStatus) -> bool:
        """Stops running containers whose liveness or startup probe failed (kubelet does it in
        computePodActions); True when it stopped any."""
        uid = pod["metadata"]["uid"]
        if uid not in self._pods:
            return False
        spec = pod.get("spec") or {}
        killed = False
        for container in spec.get("containers") or []:
            name = container["name"]
            latest = runtime.latest_container(name)
            if latest is None or latest.phase != ContainerPhase.RUNNING:
                continue
            for probe_type in (ProbeType.LIVENESS, ProbeType.STARTUP):
                if self._results.get((uid, name, probe_type)) == (latest.id, Result.FAILURE):
                    await self._kill(pod, container, latest.id, probe_type)
                    killed = True
                    break
        return killed

    async def _kill(self, pod: Obj, container: Obj, container_id: str, probe_type: ProbeType) -> None:
        spec = pod.get("spec") or {}
        name = container["name"]
        message = f"Container {name} failed {probe_type.value} probe"
        if (spec.get("restartPolicy") or "Always") != "Never":
            message += ", will be restarted"
        grace = (container.get(probe_type.spec_key) or {}).get("terminationGracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        grace = max(int(grace), MINIMUM_GRACE_PERIOD)
        self.recorder.event(pod, "Normal", "Killing", message, container_field_path(name))
        log.info("killing unhealthy container pod=%s container=%s probe=%s grace=%ds", _name(pod), name,
                 probe_type.value, grace)
        try:
            await self.runtime.stop_container(container_id, grace)
        except NotFound:
            pass


class _Worker:
    """kubelet's probe worker: probes every period, counts thresholds, publishes results."""

    def __init__(self, manager: ProbeManager, uid: str, name: str, spec: ProbeSpec):
        self.manager, self.uid, self.name, self.spec = manager, uid, name, spec
        self.counter = ThresholdCounter(spec.success_threshold, spec.failure_threshold)
        self.container_id = ""
        self.on_hold = False
        self.finished = False
        self.trigger = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        self.finished = True
        if self.task is not None:
            self.task.cancel()

    async def run(self) -> None:
        period = self.spec.period
        # Right after the agent starts, spread the probes of all pods over one period.
        if time.monotonic() - self.manager.started_monotonic < period:
            await asyncio.sleep(random.random() * period)
        try:
            while True:
                try:
                    if not await self._probe_once():
                        break
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001 - a worker survives a bad probe
                    log.exception("probe worker failed uid=%s container=%s probe=%s", self.uid, self.name,
                                  self.spec.probe_type.value)
                try:
                    await asyncio.wait_for(self.trigger.wait(), period)
                except asyncio.TimeoutError:
                    pass
                self.trigger.clear()
        finally:
            self.finished = True

    async def _probe_once(self) -> bool:
        """One probe; False when the worker should stop."""
        manager, probe_type = self.manager, self.spec.probe_type
        probes = manager._pods.get(self.uid)
        if probes is None:
            return False
        pod = probes.pod
        view = probes.views.get(self.name)
        if view is None:
            return True
        if view.container_id != self.container_id:
            self.container_id, self.on_hold = view.container_id, False
            self.counter.reset()
            if manager._results.get((self.uid, self.name, probe_type), ("",))[0] != view.container_id:
                manager._set(self.uid, self.name, probe_type, view.container_id, INITIAL_RESULT[probe_type])
        if self.on_hold:
            return True
        if not view.running:
            manager._set(self.uid, self.name, probe_type, view.container_id, Result.FAILURE
                         if probe_type == ProbeType.READINESS else INITIAL_RESULT[probe_type])
            return not (view.terminated and (pod.get("spec") or {}).get("restartPolicy") == "Never")
        if pod["metadata"].get("deletionTimestamp") and probe_type != ProbeType.READINESS:
            manager._set(self.uid, self.name, probe_type, view.container_id, Result.SUCCESS)
            return False
        if manager.clock() - view.started_at < self.spec.initial_delay:
            return True
        if probe_type == ProbeType.STARTUP:
            if manager.started(self.uid, self.name):
                return True
        elif not manager.started(self.uid, self.name):
            return True
        container = next(c for c in pod["spec"]["containers"] if c["name"] == self.name)
        outcome = await run_probe(self.spec, container, view.container_id, view.pod_ip, manager.runtime)
        if self.container_id != view.container_id or self.uid not in manager._pods:
            return True
        self._record_event(pod, outcome)
        if outcome.result == Result.UNKNOWN:
            return True                 # the probe could not run: its result is thrown away
        published = self.counter.observe(outcome.result)
        if published is None:
            return True
        manager._set(self.uid, self.name, probe_type, view.container_id, published)
        if probe_type != ProbeType.READINESS and published == Result.FAILURE:
            self.on_hold = True         # the container is killed; wait for its replacement
            self.counter.run = 0
        return True

    def _record_event(self, pod: Obj, outcome: ProbeOutcome) -> None:
        title, field_path = self.spec.probe_type.title, container_field_path(self.name)
        if outcome.error:
            self.manager.recorder.event(pod, "Warning", "Unhealthy",
                                        f"{title} probe errored and resulted in unknown state: {outcome.error}",
                                        field_path)
        elif outcome.result == Result.FAILURE:
            self.manager.recorder.event(pod, "Warning", "Unhealthy", f"{title} probe failed: {outcome.output}",
                                        field_path)
        elif outcome.warning:
            self.manager.recorder.event(pod, "Warning", "ProbeWarning", f"{title} probe warning: {outcome.output}",
                                        field_path)


def _name(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name')}"
