"""Applies a pod's actions to the runtime through CRI, and reads back the pod's runtime state."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from cri.client import CRIClient
from cri.errors import CRIError, NotFound, RuntimeUnavailable
from cri.gen import api_pb2

from agent import labels
from agent.backoff import Backoff
from agent.container_config import ContainerConfigError, PodContext, container_config
from agent.dns import ResolvConf, pod_dns
from agent.image_manager import ImageError, ImageManager
from agent.pod_actions import ContainerToStart, PodActions, compute_pod_actions
from agent.pod_status import ContainerWaiting, rfc3339
from agent.runtime_state import (ContainerPhase, PodRuntimeStatus, container_from_status, newest_first,
                                 sandbox_from_status)
from agent.sandbox_config import pod_log_directory, sandbox_config

log = logging.getLogger(__name__)

MINIMUM_GRACE_PERIOD = 2          # kubelet never gives a container less than 2 s to stop
CRASH_LOOP_BACKOFF = "CrashLoopBackOff"


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
    restart_backoff: Backoff = field(default_factory=Backoff)
    sandbox_backoff: Backoff = field(default_factory=lambda: Backoff(initial=1.0, maximum=60.0))
    runtime_name: str = "containerd"

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
        status.containers = [container_from_status(r.status, c.pod_sandbox_id)
                             for c, r in zip(containers, container_statuses) if r is not None]
        return newest_first(status)

    @staticmethod
    async def _quiet(call: Any) -> Any:
        """A sandbox or container removed between list and status simply drops out."""
        try:
            return await call
        except NotFound:
            return None

    # ------------------------------------------------------------------ act
    async def sync_pod(self, pod: dict[str, Any], status: PodRuntimeStatus) -> SyncResult:
        actions = compute_pod_actions(pod, status)
        result = SyncResult()
        if actions.nothing_to_do:
            return result
        result.acted = True
        uid = pod["metadata"]["uid"]
        log.debug("syncing pod=%s uid=%s create_sandbox=%s start=%s kill=%d", _name(pod), uid,
                 actions.create_sandbox, [c.name for c in actions.start], len(actions.kill))
        if actions.kill_pod:
            await self.stop_pod(status, grace_seconds=0)
        if actions.kill:
            grace = max(int(pod.get("spec", {}).get("terminationGracePeriodSeconds", 30)), MINIMUM_GRACE_PERIOD)
            await asyncio.gather(*(self._stop_container(container_id, grace) for container_id in actions.kill))
        for container_id in actions.remove:
            await self._remove_quietly(self.runtime.remove_container(container_id))

        if actions.create_sandbox and self.sandbox_backoff.in_backoff(uid):
            return self._sandbox_waiting(actions, result, self.sandbox_backoff.remaining(uid))
        config = await self._sandbox_config(pod, actions.attempt)
        by_name = {c["name"]: c for c in pod.get("spec", {}).get("containers") or []}
        # One image check/pull per distinct image and policy in this sync; on a new sandbox they run
        # while the sandbox starts (the sandbox is the slow part of a pod start).
        images: dict[tuple[str, str], asyncio.Future[str]] = {}
        for start in actions.start:
            container = by_name[start.name]
            key = (container["image"], container.get("imagePullPolicy") or "")
            if key not in images and not self._restart_backing_off(uid, status, start.name):
                images[key] = asyncio.ensure_future(self.images.ensure_image(uid, container, config))
        try:
            sandbox_id, pod_ip = actions.sandbox_id, status.latest_sandbox().ip if status.sandboxes else ""
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
                    return self._sandbox_waiting(actions, result, delay)
                self.sandbox_backoff.reset(uid)
                sandbox = await self.runtime.pod_sandbox_status(sandbox_id)
                pod_ip = sandbox.status.network.ip
                log.info("sandbox started pod=%s sandbox=%s ip=%s", _name(pod), sandbox_id[:13], pod_ip)

            context = PodContext(pod_ip=pod_ip, host_ip=self.node_ip, node_name=self.node_name)
            for start in actions.start:
                container = by_name[start.name]
                image = images.get((container["image"], container.get("imagePullPolicy") or ""))
                waiting, retry_in = await self._start_container(pod, container, start, sandbox_id, config,
                                                                context, status, image)
                if waiting is not None:
                    result.waiting[start.name] = waiting
                if retry_in is not None:
                    result.retry_in = retry_in if result.retry_in is None else min(result.retry_in, retry_in)
        finally:
            for pending in images.values():
                pending.cancel()
            await asyncio.gather(*images.values(), return_exceptions=True)
        return result

    async def _start_container(self, pod: dict[str, Any], container: dict[str, Any], start: ContainerToStart,
                               sandbox_id: str, sandbox: api_pb2.PodSandboxConfig, context: PodContext,
                               status: PodRuntimeStatus, image: asyncio.Future[str] | None,
                               ) -> tuple[ContainerWaiting | None, float | None]:
        uid = pod["metadata"]["uid"]
        restart_key = (uid, container["name"])
        previous = status.latest_container(container["name"])
        if previous is not None and previous.phase == ContainerPhase.EXITED:
            remaining = self.restart_backoff.remaining(restart_key)
            if remaining > 0:
                meta = pod["metadata"]
                return ContainerWaiting(CRASH_LOOP_BACKOFF, (
                    f"back-off {int(self.restart_backoff.current_delay(restart_key))}s restarting failed "
                    f"container={container['name']} pod={meta['name']}_{meta['namespace']}({uid})")), remaining
            self.restart_backoff.failed(restart_key)
        try:
            config = container_config(pod, container, restart_count=start.restart_count,
                                      node_name=self.node_name, context=context)
        except ContainerConfigError as error:
            return ContainerWaiting("CreateContainerConfigError", str(error)), None
        try:
            config.image.image = await (asyncio.shield(image) if image is not None
                                        else self.images.ensure_image(uid, container, sandbox))
        except ImageError as error:
            return error.waiting, error.retry_in
        try:
            container_id = await self.runtime.create_container(sandbox_id, config, sandbox)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            return ContainerWaiting("CreateContainerError", error.message), None
        try:
            await self.runtime.start_container(container_id)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            return ContainerWaiting("RunContainerError", error.message), None
        log.info("container started pod=%s container=%s id=%s restart=%d", _name(pod), container["name"],
                 container_id[:13], start.restart_count)
        return None, None

    @staticmethod
    def _sandbox_waiting(actions: PodActions, result: SyncResult, retry_in: float) -> SyncResult:
        """No sandbox: every container to start keeps waiting in ContainerCreating, as in kubelet."""
        for start in actions.start:
            result.waiting[start.name] = ContainerWaiting("ContainerCreating")
        result.retry_in = retry_in
        return result

    def _restart_backing_off(self, uid: str, status: PodRuntimeStatus, name: str) -> bool:
        previous = status.latest_container(name)
        return previous is not None and previous.phase == ContainerPhase.EXITED \
            and self.restart_backoff.in_backoff((uid, name))

    async def _sandbox_config(self, pod: dict[str, Any], attempt: int) -> api_pb2.PodSandboxConfig:
        return sandbox_config(pod, attempt=attempt, node_name=self.node_name,
                              dns=pod_dns(pod, self.host_dns), log_root=self.log_root,
                              seen=rfc3339(datetime.now(timezone.utc)))

    async def stop_pod(self, status: PodRuntimeStatus, grace_seconds: int) -> None:
        """Stops every running container within the grace period (all at once), then the sandboxes
        (which releases the pod's IP through CNI DEL)."""
        grace = max(grace_seconds, MINIMUM_GRACE_PERIOD)
        running = [c for c in status.containers if c.phase in (ContainerPhase.RUNNING, ContainerPhase.UNKNOWN)]
        await asyncio.gather(*(self._stop_container(c.id, grace) for c in running))
        for sandbox in status.sandboxes:
            if sandbox.ready:
                await self._remove_quietly(self.runtime.stop_pod_sandbox(sandbox.id))

    async def remove_pod(self, status: PodRuntimeStatus) -> None:
        """Removes the containers and sandboxes of a pod (the runtime stops what still runs)."""
        for container in status.containers:
            await self._remove_quietly(self.runtime.remove_container(container.id))
        for sandbox in status.sandboxes:
            await self._remove_quietly(self.runtime.remove_pod_sandbox(sandbox.id))

    async def _stop_container(self, container_id: str, grace: int) -> None:
        await self._remove_quietly(self.runtime.stop_container(container_id, grace))

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


def _name(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata", {})
    return f"{meta.get('namespace')}/{meta.get('name')}"
