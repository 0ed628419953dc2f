"""Probe specs with upstream's defaults, and the target a probe talks to; pure."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

Obj = dict[str, Any]


class ProbeType(str, Enum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"

    @property
    def title(self) -> str:
        return self.value.capitalize()

    @property
    def spec_key(self) -> str:
        return f"{self.value}Probe"


class Result(str, Enum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"


# What a new container's result is before its first probe (upstream's initialValue).
INITIAL_RESULT = {ProbeType.LIVENESS: Result.SUCCESS, ProbeType.READINESS: Result.FAILURE,
                  ProbeType.STARTUP: Result.UNKNOWN}
HANDLER_KINDS = ("exec", "httpGet", "tcpSocket", "grpc")


class ProbeSpecError(ValueError):
    pass


@dataclass(frozen=True)
class ProbeSpec:
    probe_type: ProbeType
    handler_kind: str                   # exec, httpGet, tcpSocket, grpc
    handler: Obj = field(hash=False, compare=True)
    initial_delay: int = 0
    period: int = 10
    timeout: int = 1
    success_threshold: int = 1
    failure_threshold: int = 3
    termination_grace_period: int | None = None


def _positive(probe: Obj, key: str, default: int) -> int:
    value = probe.get(key)
    return default if value in (None, 0) else int(value)


def parse_probe(probe_type: ProbeType, probe: Obj) -> ProbeSpec:
    kinds = [kind for kind in HANDLER_KINDS if probe.get(kind) is not None]
    if len(kinds) != 1:
        raise ProbeSpecError(f"{probe_type.spec_key} must specify exactly one handler of {', '.join(HANDLER_KINDS)}")
    grace = probe.get("terminationGracePeriodSeconds")
    return ProbeSpec(
        probe_type=probe_type, handler_kind=kinds[0], handler=probe[kinds[0]],
        initial_delay=int(probe.get("initialDelaySeconds") or 0), period=_positive(probe, "periodSeconds", 10),
        timeout=_positive(probe, "timeoutSeconds", 1), success_threshold=_positive(probe, "successThreshold", 1),
        failure_threshold=_positive(probe, "failureThreshold", 3),
        termination_grace_period=None if grace is None else int(grace))


def container_probes(container: Obj) -> list[ProbeSpec]:
    specs = []
    for probe_type in ProbeType:
        probe = container.get(probe_type.spec_key)
        if probe:
            specs.append(parse_probe(probe_type, probe))
    return specs


def resolve_port(port: Any, container: Obj) -> int:
    """An IntOrString probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        number = port
    elif isinstance(port, str) and port.isdigit():
        number = int(port)
    else:
        for declared in container.get("ports") or []:
            if declared.get("name") == port:
                number = int(declared["containerPort"])
                break
        else:
            raise ProbeSpecError(f"couldn't find port: {port} in {container.get('name')}")
    if not 0 < number < 65536:
        raise ProbeSpecError(f"invalid port number: {number}")
    return number
