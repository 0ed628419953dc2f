"""What the runtime holds for one pod, as plain dataclasses built from CRI messages."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from cri.gen import api_pb2

from agent import labels
from agent.resize import RuntimeResources
from agent.termination_message import MessageSource, message_source


class ContainerPhase(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


_CONTAINER_PHASES = {
    api_pb2.CONTAINER_CREATED: ContainerPhase.CREATED,
    api_pb2.CONTAINER_RUNNING: ContainerPhase.RUNNING,
    api_pb2.CONTAINER_EXITED: ContainerPhase.EXITED,
}


@dataclass
class SandboxState:
    id: str
    attempt: int
    ready: bool
    created_at: int = 0          # ns since the epoch
    ip: str = ""
    additional_ips: list[str] = field(default_factory=list)
    host_network: bool = False


@dataclass
class ContainerState:
    id: str
    name: str
    attempt: int
    phase: ContainerPhase
    sandbox_id: str = ""
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    hash: str = ""
    message_source: MessageSource | None = None  # where its termination message is read once it exits
    resources: RuntimeResources | None = None    # what the runtime applied (CRI ContainerStatus.resources)


@dataclass
class PodRuntimeStatus:
    uid: str
    sandboxes: list[SandboxState] = field(default_factory=list)       # newest first
    containers: list[ContainerState] = field(default_factory=list)    # newest first

    def latest_sandbox(self) -> SandboxState | None:
        return self.sandboxes[0] if self.sandboxes else None

    def containers_named(self, name: str) -> list[ContainerState]:
        """Every container the runtime holds for `name`, newest attempt first."""
        return [c for c in self.containers if c.name == name]

    def latest_container(self, name: str) -> ContainerState | None:
        named = self.containers_named(name)
        return named[0] if named else None


def sandbox_from_status(status: api_pb2.PodSandboxStatus) -> SandboxState:
    options = status.linux.namespaces.options
    return SandboxState(
        id=status.id, attempt=status.metadata.attempt,
        ready=status.state == api_pb2.SANDBOX_READY, created_at=status.created_at,
        ip=status.network.ip, additional_ips=[extra.ip for extra in status.network.additional_ips],
        host_network=options.network == api_pb2.NODE)


def container_from_status(status: api_pb2.ContainerStatus, sandbox_id: str = "") -> ContainerState:
    return ContainerState(
        id=status.id, name=status.metadata.name, attempt=status.metadata.attempt,
        phase=_CONTAINER_PHASES.get(status.state, ContainerPhase.UNKNOWN), sandbox_id=sandbox_id,
        created_at=status.created_at, started_at=status.started_at, finished_at=status.finished_at,
        exit_code=status.exit_code, reason=status.reason, message=status.message,
        image=status.image.image, image_ref=status.image_ref,
        hash=status.annotations.get(labels.CONTAINER_HASH, ""), message_source=message_source(status),
        resources=_runtime_resources(status))


def _runtime_resources(status: api_pb2.ContainerStatus) -> RuntimeResources | None:
    if not status.HasField("resources") or not status.resources.HasField("linux"):
        return None
    linux = status.resources.linux
    return RuntimeResources(linux.cpu_shares, linux.cpu_quota, linux.cpu_period, linux.memory_limit_in_bytes)


def newest_first(status: PodRuntimeStatus) -> PodRuntimeStatus:
    status.sandboxes.sort(key=lambda s: (s.created_at, s.attempt), reverse=True)
    status.containers.sort(key=lambda c: (c.attempt, c.created_at), reverse=True)
    return status
