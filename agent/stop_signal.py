"""`lifecycle.stopSignal` (ContainerStopSignals): the signal a container is stopped with instead of its image's.

containerd 1.6's CRI has no stop signal in ContainerConfig (CRI gained one later), so the agent delivers it
itself: the container's init process (its host PID from the verbose ContainerStatus) gets the signal, the
agent waits out the grace period for it to exit, and only then asks the runtime to stop (kill) what is left.
Signal names are the Linux ones the API accepts (SIGTERM, SIGUSR1, SIGRTMIN+3 ...)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time

from cri.client import CRIClient
from cri.errors import CRIError
from cri.gen import api_pb2

log = logging.getLogger(__name__)

POLL_SECONDS = 0.2


def signal_number(name: str) -> int | None:
    """The number of a Linux signal name as the API spells it; None for an unknown name."""
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        try:
            offset = int(name[9:])
        except ValueError:
            return None
        number = signal.SIGRTMIN + offset if name.startswith("SIGRTMIN+") else signal.SIGRTMAX - offset
        return number if signal.SIGRTMIN <= number <= signal.SIGRTMAX else None
    if name in ("SIGRTMIN", "SIGRTMAX"):
        return int(getattr(signal, name))
    try:
        return int(signal.Signals[name])
    except KeyError:
        return None


async def _init_pid(runtime: CRIClient, container_id: str) -> int | None:
    try:
        status = await runtime.container_status(container_id, verbose=True)
    except CRIError:
        return None
    if status.status.state != api_pb2.CONTAINER_RUNNING:
        return None
    try:
        return int(json.loads(status.info.get("info", "{}")).get("pid") or 0) or None
    except (ValueError, TypeError):
        return None


async def _running(runtime: CRIClient, container_id: str) -> bool:
    try:
        return (await runtime.container_status(container_id)).status.state == api_pb2.CONTAINER_RUNNING
    except CRIError:
        return False


async def signal_and_wait(runtime: CRIClient, container_id: str, name: str, grace: float) -> float:
    """Sends `name` to the container's init process and waits up to `grace` seconds for the container to
    stop; returns the seconds left (0 when it still runs)."""
    number = signal_number(name)
    pid = await _init_pid(runtime, container_id) if number is not None else None
    if number is None or pid is None:
        return grace
    try:
        os.kill(pid, number)
    except ProcessLookupError:
        return grace
    log.info("stop signal sent container=%s signal=%s pid=%d", container_id[:13], name, pid)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not await _running(runtime, container_id):
            return max(deadline - time.monotonic(), 0.0)
        await asyncio.sleep(POLL_SECONDS)
    return 0.0
