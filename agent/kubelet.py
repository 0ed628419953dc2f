"""The agent: wires node, pod source, pod workers, runtime and status managers, and runs the main
loop, which only dispatches (config changes, lifecycle events, sync tick, housekeeping tick)."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cri.client import CRIClient
from cri.errors import CRIError
from netns.install import install_cni
from netns.service import CNIService

from agent.bootstrap import CredentialPaths, load_credentials
from agent.cert_rotation import SERVING, CertificateRotator
from agent.config import AgentConfig
from agent.dns import parse_resolv_conf
from agent.events import EventRecorder
from agent.image_gc import ImageGC, policy_from_config
from agent.image_manager import ImageManager
from agent.log_rotation import LogRotator, RotationPolicy
from agent.node_server import NodeMetrics, NodeServer, NodeServerConfig, WebhookAuthorizer, subject_access_review_sender
from agent.node_server.tls import serving_names
from agent.node_server.portforward import PortForwardLimits
from agent.node_info import gather_node_facts
from agent.mirror_pods import MirrorPodManager, mirror_for
from agent.node_manager import NodeManager
from agent.node_pressure import PressureTracker, parse_thresholds
from agent.node_routes import NodeRoutes
from agent.pleg import ExitCache, LastSync, Relister
from agent.runtime_state import ContainerPhase
from agent.pod_status import TERMINAL_PHASES, generate_pod_status
from agent.pod_workers import PodHandlers, PodUpdate, PodWorkers, SyncOutcome, needs_sync
from agent.volumes import VolumeError, VolumeManager
from agent.volumes.local_path import LocalPathVolumes
from agent.hostports import HostPortManager
from agent.proxy.wiring import service_role_tasks
from agent.resize import AllocationManager, ResizeView, with_allocation
from agent.pod_status import resize_in_progress
from agent.runtime_events import watch_task_events
from agent.prober import ProbeManager
from agent.runtime_manager import RuntimeManager, read_host_file
from agent.static_pods import Change, StaticPodSource, full_name, is_mirror
from agent.stats import StatsProvider
from agent.status_manager import StatusManager
from shipmate import local_path
from shipmate.informer import Informer
from shipmate.kubeclient import NODES, PODS, KubeClient, ResourceSource
from shipmate.memory import limit_heap_retention, release_freed_memory
from shipmate.sd_notify import Notifier
from shipmate.supervisor import run_until_first_ends, stop_tasks

log = logging.getLogger(__name__)

Obj = dict[str, Any]
SYNC_TICK = 1.0
HOUSEKEEPING_TICK = 2.0
# Freed heap back to the kernel (shipmate.memory): a trim with nothing to return costs ≈ 10 µs, and after a
# burst (a node filled, pods gone) RSS comes down within seconds instead of keeping the peak for a minute.
TRIM_PERIOD = 10.0
RELIST_PERIOD = 1.0
RUNTIME_RETRY_MAX = 10.0
EXIT_SETTLE_RETRY = 0.5


@dataclass(frozen=True)
class LoopInput:
    kind: str                   # "config", "static", "pleg", "sync", "housekeeping"
    change: str = ""            # ADDED / MODIFIED / DELETED for config
    old: Obj | None = None
    new: Obj | None = None
    uid: str = ""
    observed_at: float = 0.0


class Agent:
    def __init__(self, config: AgentConfig):
        self.config = config
        self.inputs: asyncio.Queue[LoopInput] = asyncio.Queue()
        self._trimmed_at = time.monotonic()

    # ------------------------------------------------------------------ startup
    async def run(self) -> int:
        cfg = self.config
        limit_heap_retention()
        credentials = await load_credentials(cfg)     # joins the cluster first when needed
        async with CRIClient(cfg.container_runtime_endpoint, timeout=cfg.runtime_request_timeout) as runtime, \
                KubeClient(credentials.kubeconfig, user_agent="shipmate-agent") as client:
            self.runtime, self.client = runtime, client
            await asyncio.to_thread(os.makedirs, cfg.root_dir, 0o755, True)
            version = await self._wait_for_runtime()
            runtime_version = f"{version.runtime_name}://{version.runtime_version}"
            facts = await asyncio.to_thread(gather_node_facts, cfg.node_name, cfg.node_ip, cfg.max_pods,
                                            cfg.root_dir, runtime_version)
            facts.kubelet_port = cfg.node_server_port
            facts.annotations[local_path.DIR_ANNOTATION] = cfg.local_path_dir   # where the provisioner puts volumes
            resolv = await asyncio.to_thread(read_host_file, "/etc/resolv.conf")
            self.recorder = EventRecorder(client, cfg.node_name)
            self.node_manager = NodeManager(client, runtime, facts, recorder=self.recorder,
                                            pressure_tracker=PressureTracker(parse_thresholds(cfg.eviction_hard)))
            self.runtime_manager = RuntimeManager(runtime, ImageManager(runtime), cfg.node_name, cfg.node_ip,
                                                  parse_resolv_conf(resolv), cfg.pod_log_dir,
                                                  runtime_name=version.runtime_name,
                                                  cluster_dns=[cfg.cluster_dns] if cfg.cluster_dns else [],
                                                  cluster_domain=cfg.cluster_domain, client=client,
                                                  root_dir=cfg.root_dir, recorder=self.recorder)
            self.volume_manager = self.runtime_manager.volumes = VolumeManager(
                cfg.root_dir, client, node=lambda: self.node_manager.node)
            self.local_path_volumes = LocalPathVolumes(client, cfg.node_name, cfg.local_path_dir)
            node_resources = self.runtime_manager.node_resources
            self.allocation = AllocationManager(
                lambda: (node_resources.allocatable_cpu_milli, node_resources.allocatable_memory),
                lambda: list(self.pods.cache.values()))
            self.resize_views: dict[str, ResizeView] = {}
            self.probe_manager = ProbeManager(runtime, self.recorder, self._on_probe_change, node_ip=cfg.node_ip)
            self.pods: Informer[Obj] = Informer(
                ResourceSource(client, PODS, field_selector=f"spec.nodeName={cfg.node_name}"), self._on_pod_change)
            self.status_manager = StatusManager(client, api_pod=self._api_pod)
            self.workers = PodWorkers(PodHandlers(self._sync_pod, self._terminate_pod, self._cleanup_pod),
                                      resync_interval=cfg.sync_frequency)
            self.relister = Relister(runtime, cfg.node_name)
            self.exits = ExitCache()
            self.last_sync = LastSync()
            self.node_routes = NodeRoutes(cfg.node_name, cfg.cluster_cidr, lambda: self.nodes.cache.values())
            self.nodes: Informer[Obj] = Informer(ResourceSource(client, NODES), self.node_routes.on_node_change)
            self.static_pods = StaticPodSource(cfg.pod_manifest_path, cfg.node_name, self._on_static_change)
            self.mirror_pods = MirrorPodManager(
                client, cfg.node_name, node_uid=lambda: self.node_manager.node.get("metadata", {}).get("uid", ""),
                static_pods=lambda: self.static_pods.pods.values(), api_pods=lambda: self.pods.cache.values(),
                ready=self.pods.synced.is_set)
            self.metrics = NodeMetrics()
            self.stats = StatsProvider(runtime, cfg.node_name)
            self.metrics.track_queue_depth(self.workers.queue_depth)
            paths = CredentialPaths(cfg.root_dir)
            self.node_server = NodeServer(runtime, self._pod_by_name, NodeServerConfig(
                cfg.node_server_port, paths.serving_pem, cfg.node_name, credentials.ca_file,
                port_forward=PortForwardLimits(idle_timeout=cfg.streaming_connection_idle_timeout),
                root_dir=cfg.root_dir), self.metrics,
                WebhookAuthorizer(subject_access_review_sender(client)), stats=self.stats)
            self.log_rotator = LogRotator(runtime, cfg.node_name,
                                          RotationPolicy(cfg.container_log_max_size, cfg.container_log_max_files))

            self.hostports = HostPortManager(None, cfg.ipam_dir)
            tasks = [asyncio.create_task(CNIService(cfg.ipam_dir, on_change=self.hostports.sync).serve(cfg.cni_socket),
                                         name="cni-service"),
                     asyncio.create_task(self.hostports.run(), name="hostports"),
                     asyncio.create_task(self.recorder.run(), name="event-recorder"),
                     asyncio.create_task(self.volume_manager.run(), name="volume-refresh"),
                     # Static pods run without the API server: the local loops start before registration.
                     asyncio.create_task(self.static_pods.run(), name="static-pods"),
                     asyncio.create_task(ImageGC(runtime, policy_from_config(cfg), self.recorder,
                                                 cfg.node_name).run(), name="image-gc"),
                     asyncio.create_task(self.status_manager.run(), name="status-manager"),
                     asyncio.create_task(self._relist_loop(), name="pleg"),
                     asyncio.create_task(watch_task_events(cfg.container_runtime_endpoint, self.relister.resolve_uid,
                                                           self._on_runtime_event, self.exits, runtime),
                                         name="containerd-events"),
                     asyncio.create_task(self._tick(LoopInput("sync"), SYNC_TICK), name="sync-tick"),
                     asyncio.create_task(self._tick(LoopInput("housekeeping"), HOUSEKEEPING_TICK),
                                         name="housekeeping-tick"),
                     asyncio.create_task(self._main_loop(), name="main-loop")]
            tasks += [asyncio.create_task(self.node_server.run(), name="node-server"),
                      asyncio.create_task(self.log_rotator.run(), name="log-rotation")]
            if credentials.rotate:
                rotator = CertificateRotator(client, paths, cfg.node_name)
                tasks.append(asyncio.create_task(rotator.run(), name="certificate-rotation"))
            try:
                node = await self.node_manager.register()
                pod_cidr = node["spec"]["podCIDR"]
                await asyncio.to_thread(install_cni, pod_cidr, cfg.cni_bin_dir, cfg.cni_conf_dir,
                                        socket_path=cfg.cni_socket, ipam_dir=cfg.ipam_dir)
                log.info("cni installed node=%s pod_cidr=%s", cfg.node_name, pod_cidr)
                await self._tell_runtime_pod_cidr(pod_cidr)
                self.node_manager.runtime_changed()
                notifier = Notifier.from_environment()
                notifier.ready(f"node {cfg.node_name} registered, podCIDR {pod_cidr}")
                # the serving certificate's names are the registered Node's addresses, which the approver checks
                serving = CertificateRotator(client, paths, cfg.node_name, kind=SERVING,
                                             names=lambda: serving_names(self.node_manager.node),
                                             on_rotated=self.node_server.reload_certificate)
                tasks += [
                    asyncio.create_task(serving.run(), name="serving-certificate"),
                    asyncio.create_task(notifier.run_watchdog(), name="systemd-watchdog"),
                    asyncio.create_task(self.nodes.run(), name="node-informer"),
                    asyncio.create_task(self.node_routes.run(self.nodes.synced), name="node-routes"),
                    asyncio.create_task(self.node_manager.run_status_loop(), name="node-status"),
                    asyncio.create_task(self.node_manager.run_lease_loop(), name="node-lease"),
                    asyncio.create_task(self.pods.run(), name="pod-informer"),
                    asyncio.create_task(self.mirror_pods.run(), name="mirror-pods"),
                    asyncio.create_task(self.local_path_volumes.run(), name="local-path-volumes"),
                ]
                # kube-proxy and cluster DNS roles (agent/proxy/wiring.py)
                tasks += [asyncio.create_task(coroutine, name=name) for name, coroutine in
                          await service_role_tasks(client, cfg, parse_resolv_conf(resolv))]
                for name, error in await run_until_first_ends(tasks):
                    log.error("root task ended task=%s error=%r", name, error)
                return 1
            finally:  # also stops the tasks started when registration or setup failed
                await asyncio.gather(stop_tasks(tasks), self.workers.stop())

    async def _wait_for_runtime(self) -> Any:
        delay = 0.5
        while True:
            try:
                return await self.runtime.version()
            except CRIError as error:
                log.warning("container runtime not answering endpoint=%s error=%s retry_in=%.1fs",
                            self.config.container_runtime_endpoint, error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RUNTIME_RETRY_MAX)

    async def _tell_runtime_pod_cidr(self, pod_cidr: str) -> None:
        try:
            await self.runtime.update_runtime_config(pod_cidr)
        except CRIError as error:
            log.warning("UpdateRuntimeConfig failed pod_cidr=%s error=%s", pod_cidr, error)

    # ------------------------------------------------------------------ inputs
    def _on_pod_change(self, change: str, pod: Obj, old: Obj | None) -> None:
        self.inputs.put_nowait(LoopInput("config", change, old, pod))

    def _on_static_change(self, change: Change) -> None:
        self.inputs.put_nowait(LoopInput("static", change.kind, new=change.pod))

    def _on_probe_change(self, uid: str) -> None:
        """A probe result changed: sync the pod again (status, or a kill after a liveness failure)."""
        self.inputs.put_nowait(LoopInput("pleg", uid=uid, observed_at=time.monotonic()))

    def _on_runtime_event(self, uid: str, observed_at: float) -> None:
        self.inputs.put_nowait(LoopInput("pleg", uid=uid, observed_at=observed_at))

    async def _tick(self, item: LoopInput, period: float) -> None:
        while True:
            await asyncio.sleep(period)
            self.inputs.put_nowait(item)

    async def _relist_loop(self) -> None:
        delay = RELIST_PERIOD
        while True:
            try:
                events = await self.relister.relist()
                self.metrics.observe_relist(time.monotonic() - self.relister.last_relist)
                for uid in dict.fromkeys(event.uid for event in events):
                    self.inputs.put_nowait(LoopInput("pleg", uid=uid, observed_at=self.relister.last_relist))
                delay = RELIST_PERIOD
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001
                log.warning("relist failed error=%r retry_in=%.1fs", error, delay)
                self.node_manager.runtime_changed()
                delay = min(delay * 2, RUNTIME_RETRY_MAX)
            await asyncio.sleep(delay)

    # ------------------------------------------------------------------ main loop
    async def _main_loop(self) -> None:
        handlers = {"config": self._handle_config, "static": self._handle_static, "pleg": self._handle_pleg,
                    "sync": self._handle_sync_tick, "housekeeping": self._handle_housekeeping}
        while True:
            item = await self.inputs.get()
            try:
                handlers[item.kind](item)
            except Exception:  # noqa: BLE001 - the dispatcher never dies of one bad input
                log.exception("main loop handler failed input=%s", item.kind)

    def _handle_config(self, item: LoopInput) -> None:
        pod = item.new or item.old
        if pod is not None and is_mirror(pod):
            # A mirror pod is only the API's view of a static pod: never run, kept in step.
            self.mirror_pods.wake()
            static = next((s for s in self.static_pods.pods.values() if mirror_for(s, [pod])), None)
            if static is not None and item.change != "DELETED":
                self.status_manager.refresh(static["metadata"]["uid"])
            return
        if item.change == "DELETED":
            pod = item.old or item.new
            if pod is not None:
                self.workers.update(PodUpdate(pod, removed=True))
        elif item.new is not None and needs_sync(item.old, item.new):
            self.workers.update(PodUpdate(item.new))

    def _handle_static(self, item: LoopInput) -> None:
        if item.change == "DELETED" and item.new is not None:
            self.workers.update(PodUpdate(item.new, removed=True))
        self._start_static_pods()
        self.mirror_pods.wake()

    def _start_static_pods(self) -> None:
        """Starts each static pod without a worker, once no other pod of that name still runs (an
        edited manifest's old pod must stop before its successor starts, as kubelet orders them)."""
        busy = {full_name(w.pod) for uid, w in self.workers.workers.items()
                if w.pod is not None and uid not in self.static_pods.pods}
        for uid, pod in self.static_pods.pods.items():
            if uid not in self.workers.workers and full_name(pod) not in busy:
                self.workers.update(PodUpdate(pod))

    def _handle_pleg(self, item: LoopInput) -> None:
        self.workers.resync(item.uid, item.observed_at)

    def _handle_sync_tick(self, _item: LoopInput) -> None:
        self.workers.resync_due()

    def _handle_housekeeping(self, _item: LoopInput) -> None:
        if time.monotonic() - self._trimmed_at >= TRIM_PERIOD:
            release_freed_memory()
            self._trimmed_at = time.monotonic()
        if not self.node_manager.health.ready:
            self.node_manager.runtime_changed()
        self._start_static_pods()
        if not self.pods.synced.is_set() or not self.static_pods.synced.is_set():
            return
        known = {pod["metadata"]["uid"] for pod in self.pods.cache.values()} | set(self.static_pods.pods)
        for uid in self.relister.pod_uids():
            if uid and uid not in known and not self.workers.known(uid, since=self.relister.last_relist):
                namespace, name = self.relister.pod_names.get(uid, ("", ""))
                log.info("killing orphaned pod pod=%s/%s uid=%s", namespace, name, uid)
                self.workers.update(PodUpdate(_orphan(uid, namespace, name), removed=True, grace_seconds=0))
        self.volume_manager.housekeep(known | set(self.workers.workers) | set(self.relister.pod_uids()))

    def _api_pod(self, uid: str) -> Obj | None:
        static = self.static_pods.pods.get(uid)
        if static is not None:
            return mirror_for(static, self.pods.cache.values())
        return next((p for p in self.pods.cache.values() if p["metadata"].get("uid") == uid), None)

    def _pod_by_name(self, namespace: str, name: str) -> Obj | None:
        """The pod a logs/exec request names, with the status we last set (static pods before mirrors)."""
        for pod in [*self.static_pods.pods.values(), *self.pods.cache.values()]:
            meta = pod["metadata"]
            if meta.get("namespace") == namespace and meta.get("name") == name:
                return self._status_view(pod)
        return None

    # ------------------------------------------------------------------ pod work
    def _status_view(self, pod: Obj) -> Obj:
        """The pod with the status we last set (the watch may not have echoed it back yet)."""
        cached = self.status_manager.cached_status(pod["metadata"]["uid"])
        if cached is None:
            return pod
        scheduled = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"]
        cached["conditions"] = [c for c in cached.get("conditions") or [] if c.get("type") != "PodScheduled"] + scheduled
        return dict(pod, status=cached)

    def _write_status(self, pod: Obj, runtime_status: Any, waiting: dict, terminal: bool = False,
                      resize: ResizeView | None = None) -> Obj:
        uid = pod["metadata"]["uid"]
        if resize is not None:
            self.resize_views[uid] = resize
        status = generate_pod_status(self._status_view(pod), runtime_status, waiting,
                                     host_ips=[self.config.node_ip], runtime_name=self.runtime_manager.runtime_name,
                                     now=datetime.now(timezone.utc), pod_is_terminal=terminal,
                                     probes=self.probe_manager, resize=resize or self.resize_views.get(uid))
        self.status_manager.set_status(pod, status)
        return status

    async def _sync_pod(self, pod: Obj) -> SyncOutcome:
        uid = pod["metadata"]["uid"]
        started = time.monotonic()
        # containerd announced exits CRI does not show yet: report them now, from the last sync's view
        # (no CRI round trip); act once CRI agrees (runtime_events announces the exit again then).
        last = self.last_sync.get(uid)
        announced = self.exits.overlaid(last.observed) if last is not None else None
        if announced is not None:
            running_before = {c.id for c in last.observed.containers if c.phase == ContainerPhase.RUNNING}
            await self.runtime_manager.add_termination_messages(
                [c for c in announced.containers if c.id in running_before and c.phase == ContainerPhase.EXITED])
            self._write_status(pod, announced, last.waiting)
            return SyncOutcome(retry_in=EXIT_SETTLE_RETRY)
        observed = await self.runtime_manager.inspect_pod(uid)
        if await self.probe_manager.kill_unhealthy(pod, observed):
            observed = await self.runtime_manager.inspect_pod(uid)
        try:
            await self.volume_manager.ensure(pod)
        except VolumeError as error:
            # As kubelet: no sandbox and no container until every volume is set up.
            log.warning("volumes not ready pod=%s/%s retry_in=%.0fs error=%s", pod["metadata"].get("namespace"),
                        pod["metadata"].get("name"), error.retry_in, error)
            self.recorder.event(pod, "Warning", "FailedMount", str(error))
            status = self._write_status(pod, observed, {})
            return SyncOutcome(retry_in=error.retry_in, terminal=status["phase"] in TERMINAL_PHASES)
        # In-place resize: containers run with what the node allocated them (agent/resize.py).
        resize = self.allocation.sync(pod)
        run_pod = with_allocation(pod, resize.allocated)
        result = await self.runtime_manager.sync_pod(run_pod, observed)
        if result.acted:
            observed = await self.runtime_manager.inspect_pod(uid)
        if not pod["metadata"].get("deletionTimestamp"):
            resized, resize.error = await self.runtime_manager.resize(run_pod, observed, resize.allocated)
            if resized:
                observed = await self.runtime_manager.inspect_pod(uid)
                result.acted = True
            resize.in_progress = resize_in_progress(run_pod, observed, resize)
        self.probe_manager.sync_pod(pod, observed)
        status = self._write_status(pod, observed, result.waiting, resize=resize)
        if resize.pending is not None or resize.in_progress:
            # a Deferred resize may fit once other pods go; one in progress is looked at again soon
            result.retry_in = min(result.retry_in or 5.0, 5.0)
        self.last_sync.remember(uid, observed, result.waiting)
        self.metrics.observe_pod_sync(time.monotonic() - started)
        if result.acted:
            log.info("pod synced pod=%s/%s phase=%s took=%.3fs", pod["metadata"]["namespace"],
                     pod["metadata"]["name"], status["phase"], time.monotonic() - started)
        return SyncOutcome(retry_in=result.retry_in, terminal=status["phase"] in TERMINAL_PHASES)

    async def _terminate_pod(self, pod: Obj, grace_seconds: int) -> None:
        meta = pod["metadata"]
        uid = meta["uid"]
        self.probe_manager.remove_pod(uid)
        observed = await self.runtime_manager.inspect_pod(uid)
        await self.runtime_manager.stop_pod(observed, grace_seconds, pod=pod)
        in_api = self._api_pod(uid) is not None
        if in_api:
            self._write_status(pod, await self.runtime_manager.inspect_pod(uid), {}, terminal=True)
        if meta.get("deletionTimestamp") or not in_api:
            await self.runtime_manager.remove_pod(observed)
            if meta.get("name"):
                await self.runtime_manager.remove_pod_logs(pod)
            if in_api:
                self.status_manager.request_deletion(pod)
        log.info("pod terminated pod=%s/%s uid=%s grace=%ds", meta.get("namespace"), meta.get("name"), uid,
                 grace_seconds)

    async def _cleanup_pod(self, pod: Obj) -> None:
        uid = pod["metadata"]["uid"]
        leftover = await self.runtime_manager.inspect_pod(uid)
        if leftover.sandboxes or leftover.containers:
            await self.runtime_manager.stop_pod(leftover, 0)
            await self.runtime_manager.remove_pod(leftover)
        if pod.get("metadata", {}).get("name"):
            await self.runtime_manager.remove_pod_logs(pod)
        self.probe_manager.remove_pod(uid)
        await self.volume_manager.cleanup(uid)
        self.runtime_manager.forget_pod(uid)
        self.allocation.forget(uid)
        self.resize_views.pop(uid, None)
        self.status_manager.forget(uid)
        self.last_sync.forget(uid)


def _orphan(uid: str, namespace: str, name: str) -> Obj:
    """A stand-in for a pod the API no longer has, built from its sandbox's metadata."""
    return {"metadata": {"uid": uid, "namespace": namespace, "name": name}, "spec": {"containers": []}}
