"""What to do to bring a pod's runtime state to its spec (kubelet's computePodActions); pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.container_config import container_hash
from agent.runtime_state import ContainerPhase, PodRuntimeStatus


@dataclass
class ContainerToStart:
    name: str
    restart_count: int


@dataclass
class PodActions:
    kill_pod: bool = False                  # stop every container and sandbox first
    create_sandbox: bool = False
    sandbox_id: str = ""                    # the sandbox to start containers in
    attempt: int = 0                        # attempt number of a new sandbox
    start: list[ContainerToStart] = field(default_factory=list)
    kill: dict[str, str] = field(default_factory=dict)     # container id -> why
    remove: list[str] = field(default_factory=list)        # stale container ids to remove

    @property
    def nothing_to_do(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.start or self.kill or self.remove)


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True


def sandbox_needs_replacing(pod: dict[str, Any], status: PodRuntimeStatus) -> tuple[bool, str]:
    """(replace?, why). A pod needs a new sandbox when it has none ready, more than one ready,
    or (pod network) its sandbox has no IP."""
    ready = [s for s in status.sandboxes if s.ready]
    if not status.sandboxes:
        return True, "no sandbox"
    if len(ready) > 1:
        return True, "more than one ready sandbox"
    latest = status.sandboxes[0]
    if not latest.ready:
        return True, "sandbox not ready"
    host_network = bool(pod.get("spec", {}).get("hostNetwork"))
    if latest.host_network != host_network:
        return True, "network namespace mode changed"
    if not host_network and not latest.ip:
        return True, "sandbox has no IP"
    return False, ""


def compute_pod_actions(pod: dict[str, Any], status: PodRuntimeStatus) -> PodActions:
    spec = pod.get("spec", {})
    restart_policy = spec.get("restartPolicy") or "Always"
    containers = spec.get("containers") or []

    replace, _why = sandbox_needs_replacing(pod, status)
    if replace:
        attempt = status.sandboxes[0].attempt + 1 if status.sandboxes else 0
        ever_ran = bool(status.containers)
        if restart_policy == "Never" and status.sandboxes and ever_ran:
            # The pod has run and must not run again: only make sure nothing is left running.
            return PodActions(kill_pod=any(s.ready for s in status.sandboxes))
        actions = PodActions(kill_pod=bool(status.sandboxes), create_sandbox=True, attempt=attempt)
        for container in containers:
            latest = status.latest_container(container["name"])
            if latest is not None and latest.phase == ContainerPhase.EXITED \
                    and not should_restart(restart_policy, latest.exit_code):
                continue
            actions.start.append(ContainerToStart(container["name"], _next_restart_count(status, container["name"])))
        return actions

    sandbox = status.sandboxes[0]
    actions = PodActions(sandbox_id=sandbox.id, attempt=sandbox.attempt)
    wanted = {c["name"] for c in containers}
    for container in containers:
        name = container["name"]
        latest = status.latest_container(name)
        if latest is None:
            actions.start.append(ContainerToStart(name, 0))
        elif latest.phase == ContainerPhase.RUNNING:
            if latest.hash and latest.hash != container_hash(container):
                actions.kill[latest.id] = "container spec changed"
                actions.start.append(ContainerToStart(name, latest.attempt + 1))
        elif latest.phase == ContainerPhase.CREATED:
            # Created but never started (the agent stopped in between): replace it.
            actions.remove.append(latest.id)
            actions.start.append(ContainerToStart(name, latest.attempt))
        elif latest.phase == ContainerPhase.EXITED and should_restart(restart_policy, latest.exit_code):
            actions.start.append(ContainerToStart(name, latest.attempt + 1))
        elif latest.phase == ContainerPhase.UNKNOWN:
            actions.kill[latest.id] = "container in unknown state"
            actions.start.append(ContainerToStart(name, latest.attempt + 1))
    for running in status.containers:
        if running.phase == ContainerPhase.RUNNING and running.name not in wanted:
            actions.kill[running.id] = "container is not in the pod spec"
    actions.remove.extend(dead_containers_to_remove(status))
    return actions


def dead_containers_to_remove(status: PodRuntimeStatus) -> list[str]:
    """Like kubelet's container GC: keep the newest container of each name (and its predecessor's
    record when the newest is running), remove older exited ones."""
    stale = []
    for name in dict.fromkeys(c.name for c in status.containers):
        history = status.containers_named(name)
        keep = 2 if history[0].phase != ContainerPhase.EXITED else 1
        stale += [c.id for c in history[keep:] if c.phase == ContainerPhase.EXITED]
    return stale


def _next_restart_count(status: PodRuntimeStatus, name: str) -> int:
    latest = status.latest_container(name)
    return 0 if latest is None else latest.attempt + 1
