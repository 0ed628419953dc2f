"""What to do to bring a pod's runtime state to its spec (kubelet's computePodActions and
computeInitContainerActions, for regular init containers); pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.container_config import container_hash
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus


@dataclass
class ContainerToStart:
    name: str
    restart_count: int
    init: bool = False
    ephemeral: bool = False


@dataclass
class PodActions:
    kill_pod: bool = False                  # stop every container and sandbox first
    create_sandbox: bool = False
    sandbox_id: str = ""                    # the sandbox to start containers in
    attempt: int = 0                        # attempt number of a new sandbox
    init_start: list[ContainerToStart] = field(default_factory=list)   # in order; stop at the first failure
    start: list[ContainerToStart] = field(default_factory=list)
    ephemeral_start: list[ContainerToStart] = field(default_factory=list)   # never restarted, only started once
    kill: dict[str, str] = field(default_factory=dict)     # container id -> message of the Killing event
    remove: list[str] = field(default_factory=list)        # stale container ids to remove

    @property
    def nothing_to_do(self) -> bool:
        return not (self.kill_pod or self.create_sandbox or self.init_start or self.start or self.ephemeral_start
                    or self.kill or self.remove)


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return exit_code != 0
    return True


def should_container_be_restarted(pod: dict[str, Any], latest: ContainerState | None) -> bool:
    """kubelet's ShouldContainerBeRestarted for the newest container of a name."""
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    if latest is None:
        return True
    if latest.phase == ContainerPhase.RUNNING:
        return False
    if latest.phase in (ContainerPhase.UNKNOWN, ContainerPhase.CREATED):
        return True
    return should_restart(pod.get("spec", {}).get("restartPolicy") or "Always", latest.exit_code)


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
    """Containers failing liveness or startup probes are killed by the prober (agent/prober); the
    restart then follows from their exit like any other."""
    spec = pod.get("spec", {})
    restart_policy = spec.get("restartPolicy") or "Always"
    containers = spec.get("containers") or []
    init_containers = spec.get("initContainers") or []

    replace, _why = sandbox_needs_replacing(pod, status)
    if replace:
        attempt = status.sandboxes[0].attempt + 1 if status.sandboxes else 0
        actions = PodActions(kill_pod=bool(status.sandboxes), create_sandbox=True, attempt=attempt)
        if restart_policy == "Never" and attempt != 0 and status.containers:
            # The pod has run and must not run again: only make sure nothing is left running.
            return PodActions(kill_pod=any(s.ready for s in status.sandboxes))
        to_start = [c["name"] for c in containers
                    if not (restart_policy == "OnFailure" and _succeeded(status.latest_container(c["name"])))]
        initialized = any(status.latest_container(c["name"]) is not None for c in containers)
        if initialized and not to_start:
            return PodActions(kill_pod=any(s.ready for s in status.sandboxes))
        if init_containers:
            # A new sandbox starts from the first init container; the old init containers go.
            actions.remove = [c.id for c in status.containers if c.name in {i["name"] for i in init_containers}]
            first = init_containers[0]["name"]
            actions.init_start = [ContainerToStart(first, _next_restart_count(status, first), init=True)]
            return actions
        actions.start = [ContainerToStart(name, _next_restart_count(status, name)) for name in to_start]
        return actions

    sandbox = status.sandboxes[0]
    actions = PodActions(sandbox_id=sandbox.id, attempt=sandbox.attempt)
    initialized = _init_container_actions(pod, status, actions)
    actions.remove.extend(dead_containers_to_remove(status, {c["name"] for c in init_containers}))
    if not actions.kill_pod and not pod.get("metadata", {}).get("deletionTimestamp"):
        # Ephemeral containers start once, even before initialization finished, and are never restarted.
        actions.ephemeral_start = [ContainerToStart(c["name"], 0, ephemeral=True)
                                   for c in spec.get("ephemeralContainers") or []
                                   if status.latest_container(c["name"]) is None]
    if actions.kill_pod or not initialized:
        return actions

    keep = 0
    for container in containers:
        name = container["name"]
        latest = status.latest_container(name)
        if latest is None or latest.phase != ContainerPhase.RUNNING:
            if should_container_be_restarted(pod, latest):
                if latest is not None and latest.phase == ContainerPhase.CREATED:
                    # Created but never started (the agent stopped in between): replace it.
                    actions.remove.append(latest.id)
                    actions.start.append(ContainerToStart(name, latest.attempt))
                    continue
                if latest is not None and latest.phase == ContainerPhase.UNKNOWN:
                    actions.kill[latest.id] = f'Container is in "{latest.phase.value}" state, try killing it before restart'
                actions.start.append(ContainerToStart(name, _next_restart_count(status, name)))
            continue
        if latest.hash and latest.hash != container_hash(container):
            # Restarted whatever the restart policy: the spec changed.
            actions.kill[latest.id] = f"Container {name} definition changed, will be restarted"
            actions.start.append(ContainerToStart(name, latest.attempt + 1))
        else:
            keep += 1
    wanted = {c["name"] for key in ("containers", "initContainers", "ephemeralContainers") for c in spec.get(key) or []}
    for running in status.containers:
        if running.phase == ContainerPhase.RUNNING and running.name not in wanted:
            actions.kill[running.id] = f"Container {running.name} is not in the pod spec"
    if keep == 0 and not actions.start:
        actions.kill_pod = True
        actions.init_start = []             # sidecars do not keep a finished pod alive
        actions.ephemeral_start = []
    return actions


def is_sidecar(container: dict[str, Any]) -> bool:
    """A restartable init container (restartPolicy Always): started in order with the init
    containers, then kept running beside the app containers."""
    return container.get("restartPolicy") == "Always"


def _init_container_actions(pod: dict[str, Any], status: PodRuntimeStatus, actions: PodActions) -> bool:
    """computeInitContainerActions: returns whether the pod is initialized; adds the init
    containers to start (the next regular one, sidecars that stopped), sidecars to kill, or
    kill_pod when a regular init container failed under Never. A running sidecar counts as started
    (startup probes of sidecars are not consulted)."""
    spec = pod.get("spec", {})
    init_containers = spec.get("initContainers") or []
    if not init_containers:
        return True
    restart_on_failure = (spec.get("restartPolicy") or "Always") != "Never"
    # A regular container created or running means initialization finished once, even if the init
    # containers were removed since.
    initialized = any((latest := status.latest_container(c["name"])) is not None
                      and latest.phase in (ContainerPhase.CREATED, ContainerPhase.RUNNING)
                      for c in spec.get("containers") or [])
    previous_done = initialized
    to_start: list[ContainerToStart] = []

    def start(index: int) -> None:
        name = init_containers[index]["name"]
        to_start.append(ContainerToStart(name, _next_restart_count(status, name), init=True))

    # Backwards: the last init container with a status says where initialization stands; the ones
    # before it are done (regular) or must be kept running (sidecars).
    for index in range(len(init_containers) - 1, -1, -1):
        container = init_containers[index]
        sidecar = is_sidecar(container)
        latest = status.latest_container(container["name"])
        if latest is None:
            if previous_done and sidecar:
                start(index)
            continue
        if previous_done and not sidecar:
            continue
        if latest.phase == ContainerPhase.CREATED:
            start(index)
        elif latest.phase == ContainerPhase.RUNNING:
            if sidecar:
                if index == len(init_containers) - 1:
                    initialized = True
                elif not previous_done:
                    start(index + 1)
                if latest.hash and latest.hash != container_hash(container):
                    actions.kill[latest.id] = f"Init container {container['name']} definition changed"
                    start(index)
        elif latest.phase == ContainerPhase.EXITED:
            if sidecar:
                start(index)
            elif latest.exit_code != 0:
                if not restart_on_failure:
                    actions.kill_pod = True
                    actions.init_start = []
                    return False
                start(index)
            elif index == len(init_containers) - 1:
                initialized = True
            else:
                start(index + 1)
        else:                                       # unknown state
            if not sidecar and not restart_on_failure:
                actions.kill_pod = True
                actions.init_start = []
                return False
            actions.kill[latest.id] = f'Init container is in "{latest.phase.value}" state, try killing it before restart'
            start(index)
        previous_done = True
    if not previous_done:
        start(0)
    actions.init_start.extend(reversed(to_start))
    return initialized


def dead_containers_to_remove(status: PodRuntimeStatus, init_names: set[str] | frozenset[str] = frozenset()
                              ) -> list[str]:
    """Keeps the newest exited container of each name (the status' lastState, or its terminated
    state) and the one before it (the lastState of a finished container), and removes older ones,
    as kubelet's container GC leaves them; of an init container only the newest exited run stays
    (pruneInitContainersBeforeStart)."""
    stale = []
    for name in dict.fromkeys(c.name for c in status.containers):
        history = status.containers_named(name)
        exited = [c.id for c in history if c.phase == ContainerPhase.EXITED]
        keep = 2 if history[0].phase == ContainerPhase.EXITED and name not in init_names else 1
        stale += exited[keep:]
    return stale


def first_exited(status: PodRuntimeStatus, name: str) -> ContainerState | None:
    """The newest exited container of a name: its finishedAt is where a restart backoff counts from."""
    return next((c for c in status.containers_named(name) if c.phase == ContainerPhase.EXITED), None)


def _succeeded(latest: ContainerState | None) -> bool:
    return latest is not None and latest.phase == ContainerPhase.EXITED and latest.exit_code == 0


def _next_restart_count(status: PodRuntimeStatus, name: str) -> int:
    latest = status.latest_container(name)
    return 0 if latest is None else latest.attempt + 1
