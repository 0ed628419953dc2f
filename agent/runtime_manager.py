"""Applies a pod's actions to the runtime through CRI, and reads back the pod's runtime state."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

import aiohttp

from cri.client import CRIClient
from cri.errors import CRIError, NotFound, RuntimeUnavailable
from cri.gen import api_pb2

from agent import labels
from agent.backoff import Backoff
from agent.container_config import (ContainerConfigError, EnvSources, ImageUser, NodeResources, PodContext,
                                    container_config, container_hash, container_resources, oom_score_adj, pod_format,
                                    verify_run_as_non_root)
from agent.dns import ResolvConf, pod_dns
from agent.events import container_field_path
from agent.hooks import HookError, run_hook
from agent.image_manager import ImageError, ImageManager
from agent.stop_signal import signal_and_wait
from agent.pod_actions import ContainerToStart, compute_pod_actions, first_exited, is_sidecar
from agent.pod_status import CONTAINER_CREATING, POD_INITIALIZING, ContainerWaiting
from agent.resize import resizable_containers, resize_action
from agent.runtime_state import (ContainerPhase, ContainerState, PodRuntimeStatus, container_from_status, newest_first,
                                 sandbox_from_status)
from agent.sandbox_config import managed_hosts_file, pod_log_directory, sandbox_config
from agent.termination_message import create_message_file, read_termination_message
from agent.volumes import VolumeError, VolumeManager
from shipmate.durations import format_go_duration
from shipmate.timeutil import rfc3339
from shipmate.kubeclient import CONFIG_MAPS, SECRETS, SERVICES, ApiError, KubeClient, NotFound as ApiNotFound
from shipmate.supervisor import stop_tasks

log = logging.getLogger(__name__)

MINIMUM_GRACE_PERIOD = 2          # kubelet never gives a container less than 2 s to stop
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"
SYNC_ERROR_RETRY = 10.0           # kubelet's pod worker retries a failed sync after backOffPeriod (10 s)
NORMAL, WARNING = "Normal", "Warning"


class Recorder(Protocol):
    """agent.events.EventRecorder: queues an event about `obj`; never blocks or raises."""
    def event(self, obj: dict[str, Any], event_type: str, reason: str, message: str,
              field_path: str = "") -> None: ...


@dataclass
class SyncResult:
    waiting: dict[str, ContainerWaiting] = field(default_factory=dict)
    retry_in: float | None = None       # a backoff expires then: sync again
    acted: bool = False                 # the runtime state changed: observe it again


@dataclass
class RuntimeManager:
    runtime: CRIClient
    images: ImageManager
    node_name: str
    node_ip: str
    host_dns: ResolvConf
    log_root: str = "/var/log/pods"
    # CrashLoopBackOff counts from the container's finishedAt (wall clock), as kubelet's doBackOff.
    restart_backoff: Backoff = field(default_factory=lambda: Backoff(clock=time.time))
    sandbox_backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=60.0))
    runtime_name: str = "containerd"
    # ClusterFirst DNS (--cluster-dns / --cluster-domain; empty: pods get the host's resolv.conf)
    cluster_dns: list[str] = field(default_factory=list)
    cluster_domain: str = "cluster.local"
    recorder: Recorder | None = None
    client: KubeClient | None = None     # reads configMaps/secrets that env refers to
    node_resources: NodeResources = field(default_factory=NodeResources.of_this_machine)
    volumes: VolumeManager | None = None  # the pod's volumes, set up (ensure) before sync_pod

    root_dir: str = "/var/lib/shipmate/agent"      # kubelet's --root-dir: pods/<uid>/etc-hosts
    _service_cache: dict[tuple[str, bool], tuple[dict[str, Any], ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.images.events = self._event

    @property
    def seccomp_root(self) -> str:
        """Where Localhost seccomp profiles live: `<root-dir>/seccomp`, as kubelet's."""
        return os.path.join(self.root_dir, "seccomp")

    # ------------------------------------------------------------------ observe
    async def inspect_pod(self, uid: str) -> PodRuntimeStatus:
        selector = {labels.POD_UID: uid}
        sandboxes, containers = await asyncio.gather(
            self.runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector=selector)),
            self.runtime.list_containers(api_pb2.ContainerFilter(label_selector=selector)))
        sandbox_statuses = await asyncio.gather(
            *(self._quiet(self.runtime.pod_sandbox_status(s.id)) for s in sandboxes))
        container_statuses = await asyncio.gather(
            *(self._quiet(self.runtime.container_status(c.id)) for c in containers))
        status = PodRuntimeStatus(uid=uid)
        status.sandboxes = [sandbox_from_status(r.status) for r in sandbox_statuses if r is not None]
        found = [(container_from_status(r.status, c.pod_sandbox_id), r.status)
                 for c, r in zip(containers, container_statuses) if r is not None]
        status.containers = [state for state, _ in found]
        await self.add_termination_messages(status.containers)
        return newest_first(status)

    async def add_termination_messages(self, containers: list[ContainerState]) -> None:
        """Each exited container's message gets its termination message (read in a thread, as root, below
        the agent's root dir without following symlinks): also for exits containerd announced before CRI
        shows them, so a terminated state is never reported without its message."""
        exited = [state for state in containers if state.phase == ContainerPhase.EXITED]
        if not exited:
            return
        messages = await asyncio.to_thread(lambda: [
            read_termination_message(state.message_source, state.exit_code, state.reason, self.root_dir)
            for state in exited])
        for state, message in zip(exited, messages):
            if message:
                state.message = f"{state.message}: {message}" if state.message else message

    @staticmethod
    async def _quiet(call: Any) -> Any:
        """A sandbox or container removed between list and status simply drops out."""
        try:
            return await call
        except NotFound:
            return None

    def _event(self, pod: dict[str, Any], event_type: str, reason: str, message: str, field_path: str = "") -> None:
        if self.recorder is not None:
            self.recorder.event(pod, event_type, reason, message, field_path)

    # ------------------------------------------------------------------ act
    async def sync_pod(self, pod: dict[str, Any], status: PodRuntimeStatus) -> SyncResult:
        actions = compute_pod_actions(pod, status)
        result = SyncResult()
        if actions.nothing_to_do:
            return result
        result.acted = True
        uid = pod["metadata"]["uid"]
        log.debug("syncing pod=%s uid=%s create_sandbox=%s init=%s start=%s kill=%d", _name(pod), uid,
                  actions.create_sandbox, [c.name for c in actions.init_start], [c.name for c in actions.start],
                  len(actions.kill))
        if actions.kill_pod:
            if actions.create_sandbox and status.sandboxes:
                self._event(pod, NORMAL, "SandboxChanged", "Pod sandbox changed, it will be killed and re-created.")
            await self.stop_pod(status, grace_seconds=_grace_period(pod), pod=pod)
        if actions.kill:
            await asyncio.gather(*(self._kill_container(pod, status, container_id, message)
                                   for container_id, message in actions.kill.items()))
        for container_id in actions.remove:
            await self._remove_quietly(self.runtime.remove_container(container_id))
        to_start = actions.init_start + actions.start
        if not to_start and not actions.create_sandbox and not actions.ephemeral_start:
            return result

        if actions.create_sandbox and self.sandbox_backoff.in_backoff(uid):
            return self._sandbox_waiting(pod, to_start, result, self.sandbox_backoff.remaining(uid))
        config = await self._sandbox_config(pod, actions.attempt)
        by_name = _containers_by_name(pod)
        # One image check/pull per distinct image and policy in this sync; on a new sandbox they run
        # while the sandbox starts (the sandbox is the slow part of a pod start). Init containers
        # after the first start later, so only the first one's image is fetched ahead.
        images: dict[tuple[str, str], asyncio.Future[str]] = {}
        for start in to_start[:1] if actions.init_start else to_start:
            container = by_name[start.name]
            key = (container["image"], container.get("imagePullPolicy") or "")
            if key not in images and not self._restart_backing_off(pod, status, container):
                images[key] = asyncio.ensure_future(self.images.ensure_image(pod, container, config))
        try:
            sandbox_id, pod_ips = actions.sandbox_id, _sandbox_ips(status)
            if actions.create_sandbox:
                await asyncio.to_thread(os.makedirs, config.log_directory, 0o755, True)
                try:
                    sandbox_id = await self.runtime.run_pod_sandbox(config)
                except RuntimeUnavailable:
                    raise
                except CRIError as error:
                    delay = self.sandbox_backoff.failed(uid)
                    log.warning("sandbox creation failed pod=%s retry_in=%.0fs error=%s", _name(pod), delay,
                                error.message)
                    self._event(pod, WARNING, "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {error.message}")
                    return self._sandbox_waiting(pod, to_start, result, delay)
                self.sandbox_backoff.reset(uid)
                sandbox = await self.runtime.pod_sandbox_status(sandbox_id)
                pod_ips = [ip for ip in [sandbox.status.network.ip] if ip] + \
                    [extra.ip for extra in sandbox.status.network.additional_ips]
                log.info("sandbox started pod=%s sandbox=%s ip=%s", _name(pod), sandbox_id[:13],
                         pod_ips[0] if pod_ips else "")
            if pod.get("spec", {}).get("hostNetwork"):
                pod_ips = [self.node_ip]
            context = PodContext(pod_ips=tuple(pod_ips), host_ips=(self.node_ip,), node_name=self.node_name,
                                 node=self.node_resources)
            may_start_apps = True
            for start in actions.init_start:
                # A regular init container that fails to start stops the sync (the next one starts
                # only after it exits 0); a sidecar that fails does not.
                if not await self._start_one(pod, start, sandbox_id, config, context, status, images, result) \
                        and not is_sidecar(by_name[start.name]):
                    may_start_apps = False
                    break
            for start in actions.start if may_start_apps else []:
                await self._start_one(pod, start, sandbox_id, config, context, status, images, result)
            for start in actions.ephemeral_start if not actions.create_sandbox else []:
                await self._start_one(pod, start, sandbox_id, config, context, status, images, result)
        finally:
            await stop_tasks(list(images.values()))
        return result

    async def _start_one(self, pod: dict[str, Any], start: ContainerToStart, sandbox_id: str,
                         config: api_pb2.PodSandboxConfig, context: PodContext, status: PodRuntimeStatus,
                         images: dict[tuple[str, str], asyncio.Future[str]], result: SyncResult) -> bool:
        container = _containers_by_name(pod)[start.name]
        image = images.get((container["image"], container.get("imagePullPolicy") or ""))
        waiting, retry_in = await self._start_container(pod, container, start, sandbox_id, config, context,
                                                        status, image)
        if waiting is not None:
            result.waiting[start.name] = waiting
        if retry_in is not None:
            result.retry_in = retry_in if result.retry_in is None else min(result.retry_in, retry_in)
        return waiting is None

    async def _start_container(self, pod: dict[str, Any], container: dict[str, Any], start: ContainerToStart,
                               sandbox_id: str, sandbox: api_pb2.PodSandboxConfig, context: PodContext,
                               status: PodRuntimeStatus, image: asyncio.Future[str] | None,
                               ) -> tuple[ContainerWaiting | None, float | None]:
        name = container["name"]
        field_path = container_field_path(name, start.init, start.ephemeral)
        in_backoff, remaining = self._restart_backoff_check(pod, status, container)
        if in_backoff:
            key = _backoff_key(pod, container)
            self._event(pod, WARNING, "BackOff",
                        f"Back-off restarting failed container {name} in pod {pod_format(pod)}", field_path)
            return ContainerWaiting(CRASH_LOOP_BACKOFF, (
                f"back-off {format_go_duration(self.restart_backoff.current_delay(key))} restarting failed "
                f"container={name} pod={pod_format(pod)}")), remaining
        try:
            image_ref = await (asyncio.shield(image) if image is not None
                               else self.images.ensure_image(pod, container, sandbox))
        except ImageError as error:
            return error.waiting, error.retry_in
        try:
            sources = await self._env_sources(pod, container)
            image_user = await self._image_user(pod, container, image_ref)
            verify_run_as_non_root(pod, container, image_user)
            mounts = await self.volumes.mounts_for(pod, container) if self.volumes is not None else []
            mounts += await self._hosts_mount(pod, container, context)
            mounts += await self._termination_message_mount(pod, container)
            config = container_config(pod, container, restart_count=start.restart_count,
                                      node_name=self.node_name, context=context, sources=sources, mounts=mounts,
                                      seccomp_root=self.seccomp_root,
                                      target_id=_target_container_id(container, status))
        except (ContainerConfigError, VolumeError) as error:
            self._event(pod, WARNING, "Failed", f"Error: {error}", field_path)
            return ContainerWaiting("CreateContainerConfigError", str(error)), SYNC_ERROR_RETRY
        config.image.image = image_ref
        try:
            container_id = await self.runtime.create_container(sandbox_id, config, sandbox)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            self._event(pod, WARNING, "Failed", f"Error: {error.message}", field_path)
            return ContainerWaiting("CreateContainerError", error.message), SYNC_ERROR_RETRY
        self._event(pod, NORMAL, "Created", f"Created container: {name}", field_path)
        try:
            await self.runtime.start_container(container_id)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            self._event(pod, WARNING, "Failed", f"Error: {error.message}", field_path)
            return ContainerWaiting("RunContainerError", error.message), SYNC_ERROR_RETRY
        self._event(pod, NORMAL, "Started", f"Started container {name}", field_path)
        log.info("container started pod=%s container=%s id=%s restart=%d", _name(pod), name,
                 container_id[:13], start.restart_count)
        post_start = (container.get("lifecycle") or {}).get("postStart")
        if post_start:
            try:
                await run_hook(self.runtime, container_id, post_start, context.pod_ip)
            except HookError as error:
                log.info("postStart hook failed pod=%s container=%s error=%s", _name(pod), name, error)
                # The message stays out of the event: it may carry secrets (as kubelet).
                self._event(pod, WARNING, "FailedPostStartHook", "PostStartHook failed", field_path)
                await self._stop_container(container_id, _grace_period(pod))
                return ContainerWaiting("PostStartHookError", str(error)), SYNC_ERROR_RETRY
        return None, None

    def _restart_backoff_check(self, pod: dict[str, Any], status: PodRuntimeStatus,
                               container: dict[str, Any]) -> tuple[bool, float]:
        """kubelet's doBackOff: the window counts from the newest exited run's finishedAt; an
        attempt outside it moves the backoff to its next step."""
        previous = first_exited(status, container["name"])
        if previous is None:
            return False, 0.0
        key, finished = _backoff_key(pod, container), previous.finished_at / 1e9
        if self.restart_backoff.in_backoff_since(key, finished):
            return True, self.restart_backoff.remaining_since(key, finished)
        self.restart_backoff.next(key, finished)
        return False, 0.0

    def _restart_backing_off(self, pod: dict[str, Any], status: PodRuntimeStatus, container: dict[str, Any]) -> bool:
        previous = first_exited(status, container["name"])
        return previous is not None and self.restart_backoff.in_backoff_since(
            _backoff_key(pod, container), previous.finished_at / 1e9)

    async def _env_sources(self, pod: dict[str, Any], container: dict[str, Any]) -> EnvSources:
        """Fetches the configMaps and secrets the container's env and envFrom refer to (missing
        ones are None: whether that is an error depends on `optional`)."""
        config_maps: set[str] = set()
        secrets: set[str] = set()
        for source in container.get("envFrom") or []:
            if source.get("configMapRef"):
                config_maps.add(source["configMapRef"].get("name", ""))
            if source.get("secretRef"):
                secrets.add(source["secretRef"].get("name", ""))
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if value_from.get("configMapKeyRef"):
                config_maps.add(value_from["configMapKeyRef"].get("name", ""))
            if value_from.get("secretKeyRef"):
                secrets.add(value_from["secretKeyRef"].get("name", ""))
        namespace = pod["metadata"]["namespace"]
        if self.client is None:
            if config_maps or secrets:
                kind, name = ("configMap", sorted(config_maps)[0]) if config_maps else ("secret", sorted(secrets)[0])
                raise ContainerConfigError(f"couldn't get {kind} {namespace}/{name}, no kubeClient defined")
            return EnvSources()
        try:
            found_maps, found_secrets, services = await asyncio.gather(
                asyncio.gather(*(self._get_or_none(CONFIG_MAPS, name, namespace) for name in sorted(config_maps))),
                asyncio.gather(*(self._get_or_none(SECRETS, name, namespace) for name in sorted(secrets))),
                self._services(pod))
        except (ApiError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            # As kubelet: an API error while building the environment is CreateContainerConfigError.
            raise ContainerConfigError(f"failed to read env sources: {error!r}") from None
        return EnvSources(config_maps=dict(zip(sorted(config_maps), found_maps)),
                          secrets=dict(zip(sorted(secrets), found_secrets)), services=services)

    async def _services(self, pod: dict[str, Any]) -> tuple[dict[str, Any], ...]:
        """The `kubernetes` service and, with enableServiceLinks, the pod's namespace's services,
        read at each container start (kubelet reads them from an informer). When the API server
        does not answer, the last answer for the namespace serves; a static pod without one gets
        none (it must run without the API server), another pod a config error, as kubelet's
        "services have not yet been read at least once"."""
        assert self.client is not None
        namespace = pod["metadata"]["namespace"]
        links = pod.get("spec", {}).get("enableServiceLinks", True) is not False
        try:
            master = await self._get_or_none(SERVICES, "kubernetes", "default")
            local = (await self.client.list(SERVICES, namespace)).get("items") or [] if links else []
        except ApiNotFound:
            return ()                          # an API server without services
        except (ApiError, aiohttp.ClientError, asyncio.TimeoutError) as error:
            if (namespace, links) in self._service_cache:
                return self._service_cache[(namespace, links)]
            if (pod["metadata"].get("annotations") or {}).get(labels.CONFIG_SOURCE, "api") != "api":
                return ()
            raise ContainerConfigError(f"services have not yet been read at least once, cannot construct "
                                       f"envvars: {error!r}") from None
        for item in local:
            item.setdefault("metadata", {}).setdefault("namespace", namespace)
        found = tuple(([master] if master is not None else []) + local)
        self._service_cache[(namespace, links)] = found
        return found

    async def _get_or_none(self, resource: Any, name: str, namespace: str) -> dict[str, Any] | None:
        assert self.client is not None
        try:
            return await self.client.get(resource, name, namespace)
        except ApiNotFound:
            return None

    async def _hosts_mount(self, pod: dict[str, Any], container: dict[str, Any],
                           context: PodContext) -> list[api_pb2.Mount]:
        """kubelet's managed /etc/hosts (`<root-dir>/pods/<uid>/etc-hosts`), unless the container
        mounts its own or the pod has no IP yet."""
        if not context.pod_ips or any(m.get("mountPath") == "/etc/hosts" for m in container.get("volumeMounts") or []):
            return []
        path = os.path.join(self.root_dir, "pods", pod["metadata"]["uid"], "etc-hosts")
        node_hosts = await asyncio.to_thread(read_host_file, "/etc/hosts") if pod.get("spec", {}).get("hostNetwork") else ""
        text = managed_hosts_file(pod, list(context.pod_ips), self.cluster_domain, node_hosts)
        await asyncio.to_thread(_write_file, path, text)
        return [api_pb2.Mount(container_path="/etc/hosts", host_path=path)]

    async def _termination_message_mount(self, pod: dict[str, Any], container: dict[str, Any]) -> list[api_pb2.Mount]:
        path = container.get("terminationMessagePath", "/dev/termination-log")
        if not path or any(m.get("mountPath") == path for m in container.get("volumeMounts") or []):
            return []
        host_path = await asyncio.to_thread(create_message_file, self.root_dir, pod["metadata"]["uid"],
                                            container["name"])
        return [api_pb2.Mount(container_path=path, host_path=host_path)]

    async def _image_user(self, pod: dict[str, Any], container: dict[str, Any], image_ref: str) -> ImageUser:
        """The image's user, needed only to check runAsNonRoot when no runAsUser is given."""
        security = container.get("securityContext") or {}
        pod_security = pod.get("spec", {}).get("securityContext") or {}
        non_root = security.get("runAsNonRoot", pod_security.get("runAsNonRoot"))
        run_as_user = security.get("runAsUser", pod_security.get("runAsUser"))
        if not non_root or run_as_user is not None:
            return ImageUser()
        return ImageUser.of(await self.runtime.image_status(image_ref))

    @staticmethod
    def _sandbox_waiting(pod: dict[str, Any], to_start: list[ContainerToStart], result: SyncResult,
                         retry_in: float) -> SyncResult:
        """No sandbox: the containers to start keep waiting in ContainerCreating (PodInitializing
        for a pod with init containers), as in kubelet."""
        reason = POD_INITIALIZING if pod.get("spec", {}).get("initContainers") else CONTAINER_CREATING
        for start in to_start:
            result.waiting[start.name] = ContainerWaiting(reason)
        result.retry_in = retry_in
        return result

    async def _sandbox_config(self, pod: dict[str, Any], attempt: int) -> api_pb2.PodSandboxConfig:
        return sandbox_config(pod, attempt=attempt, node_name=self.node_name,
                              dns=pod_dns(pod, self.host_dns, self.cluster_dns, self.cluster_domain),
                              log_root=self.log_root, seen=rfc3339(datetime.now(timezone.utc)),
                              seccomp_root=self.seccomp_root)

    # ------------------------------------------------------------------ in-place resize
    async def resize(self, pod: dict[str, Any], status: PodRuntimeStatus, allocation: dict[str, dict[str, Any]]
                     ) -> tuple[bool, str]:
        """Brings each running container's resources to its allocation (agent/resize.py): CRI
        UpdateContainerResources, or a restart where the container's resizePolicy asks for one. `pod` carries the
        allocation already (resize.with_allocation). Returns (acted, error message of a failed update)."""
        acted, failures = False, []
        by_name = {c["name"]: c for c in resizable_containers(pod)}
        for name, container in by_name.items():
            latest = status.latest_container(name)
            allocated = allocation.get(name)
            if latest is None or latest.phase != ContainerPhase.RUNNING or allocated is None:
                continue
            action = resize_action(container, allocated, latest.resources)
            if action == "restart":
                acted = True
                await self._kill_container(pod, status, latest.id, f"Container {name} resize requires restart")
            elif action == "update":
                acted = True
                init = container in ((pod.get("spec") or {}).get("initContainers") or [])
                oom = oom_score_adj(pod, container, self.node_resources.memory_capacity)
                try:
                    await self.runtime.update_container_resources(latest.id, container_resources(container, oom))
                    log.info("container resized pod=%s container=%s resources=%s", _name(pod), name, allocated)
                except CRIError as error:
                    failures.append(f"failed to update resources of container {name}: {error.message}")
                    self._event(pod, WARNING, "ResizeFailed",
                                f"Pod resize failed for container {name}: {error.message}",
                                container_field_path(name, init))
        return acted, "; ".join(failures)

    # ------------------------------------------------------------------ stop
    async def stop_pod(self, status: PodRuntimeStatus, grace_seconds: int, pod: dict[str, Any] | None = None) -> None:
        """Stops every running container within the grace period (all at once, each running its
        preStop hook first), then the sandboxes (which releases the pod's IP through CNI DEL)."""
        running = [c for c in status.containers if c.phase in (ContainerPhase.RUNNING, ContainerPhase.UNKNOWN)]
        await asyncio.gather(*(self._kill_container(pod, status, c.id, "", grace_override=grace_seconds)
                               for c in running))
        for sandbox in status.sandboxes:
            if sandbox.ready:
                await self._remove_quietly(self.runtime.stop_pod_sandbox(sandbox.id))

    async def _kill_container(self, pod: dict[str, Any] | None, status: PodRuntimeStatus, container_id: str,
                              message: str, grace_override: int | None = None) -> None:
        """kubelet's killContainer: Killing event, preStop hook within the grace period, then
        StopContainer with what is left of it (at least 2 s)."""
        state = next((c for c in status.containers if c.id == container_id), None)
        name = state.name if state is not None else ""
        spec = _containers_by_name(pod).get(name) if pod is not None else None
        grace = grace_override if grace_override is not None else _grace_period(pod)
        if pod is not None and pod.get("metadata", {}).get("name"):
            init = spec is not None and spec in (pod.get("spec", {}).get("initContainers") or [])
            self._event(pod, NORMAL, "Killing", message or f"Stopping container {name}",
                        container_field_path(name, init))
        pre_stop = ((spec or {}).get("lifecycle") or {}).get("preStop")
        if pre_stop and grace > 0 and state is not None and state.phase == ContainerPhase.RUNNING:
            started = time.monotonic()
            try:
                await asyncio.wait_for(run_hook(self.runtime, container_id, pre_stop, "", timeout=grace), grace)
            except (HookError, asyncio.TimeoutError) as error:
                log.info("preStop hook failed pod=%s container=%s error=%s", _name(pod or {}), name, error)
                if isinstance(error, HookError) and pod is not None:
                    self._event(pod, WARNING, "FailedPreStopHook", "PreStopHook failed", container_field_path(name))
            grace -= int(time.monotonic() - started)
        stop_signal = ((spec or {}).get("lifecycle") or {}).get("stopSignal")
        if stop_signal and state is not None and state.phase == ContainerPhase.RUNNING:
            await signal_and_wait(self.runtime, container_id, stop_signal, max(grace, MINIMUM_GRACE_PERIOD))
            # Stopped already, or out of time: the runtime kills what is left at once.
            await self._remove_quietly(self.runtime.stop_container(container_id, 0))
            return
        await self._stop_container(container_id, grace)

    async def _stop_container(self, container_id: str, grace: int) -> None:
        await self._remove_quietly(self.runtime.stop_container(container_id, max(grace, MINIMUM_GRACE_PERIOD)))

    async def remove_pod(self, status: PodRuntimeStatus) -> None:
        """Removes the containers and sandboxes of a pod (the runtime stops what still runs)."""
        for container in status.containers:
            await self._remove_quietly(self.runtime.remove_container(container.id))
        for sandbox in status.sandboxes:
            await self._remove_quietly(self.runtime.remove_pod_sandbox(sandbox.id))

    @staticmethod
    async def _remove_quietly(call: Any) -> None:
        try:
            await call
        except NotFound:
            pass

    async def remove_pod_logs(self, pod: dict[str, Any]) -> None:
        await asyncio.to_thread(shutil.rmtree, pod_log_directory(pod, self.log_root), True)

    def forget_pod(self, uid: str) -> None:
        self.images.forget_pod(uid)
        self.restart_backoff.forget_where(lambda key: isinstance(key, tuple) and key[0] == uid)
        self.sandbox_backoff.reset(uid)


def _containers_by_name(pod: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    spec = (pod or {}).get("spec", {})
    return {c["name"]: c for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or []}


def _target_container_id(container: dict[str, Any], status: PodRuntimeStatus) -> str:
    """The running container whose process namespace an ephemeral container with targetContainerName joins
    ("" when it names none, or that container is not running: then the pod's namespace, as kubelet)."""
    target = container.get("targetContainerName")
    latest = status.latest_container(target) if target else None
    return latest.id if latest is not None and latest.phase == ContainerPhase.RUNNING else ""


def _backoff_key(pod: dict[str, Any], container: dict[str, Any]) -> tuple[str, str, str]:
    """kubelet's GetBackoffKey: per pod, container name and spec hash (a new spec starts afresh)."""
    return pod["metadata"]["uid"], container["name"], container_hash(container)


def _grace_period(pod: dict[str, Any] | None) -> int:
    """setTerminationGracePeriod: the deletion's grace period, else the spec's (default 30 s)."""
    meta, spec = (pod or {}).get("metadata", {}), (pod or {}).get("spec", {})
    if meta.get("deletionGracePeriodSeconds") is not None:
        return int(meta["deletionGracePeriodSeconds"])
    return int(spec.get("terminationGracePeriodSeconds", 30))


def _sandbox_ips(status: PodRuntimeStatus) -> list[str]:
    sandbox = status.latest_sandbox()
    if sandbox is None or not sandbox.ip:
        return []
    return [sandbox.ip] + sandbox.additional_ips


def read_host_file(path: str) -> str:
    """A host file's text (/etc/resolv.conf, /etc/hosts); empty when it cannot be read."""
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return ""


def _write_file(path: str, text: str) -> None:
    """Written in place (the file is bind-mounted into running containers: a rename would detach it)."""
    os.makedirs(os.path.dirname(path), 0o750, exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o644)


def _name(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"
