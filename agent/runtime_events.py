"""containerd's task events (start, exit, OOM) as fast pod lifecycle signals; the relist stays the
safety net for anything missed while the stream was down.

An exit is announced twice: at once (with the exit recorded in the ExitCache, so the pod's status
can show it before CRI does), and again once CRI's ContainerStatus stops saying RUNNING (≈0.25 s
later on containerd 1.6), so that actions such as a restart see the runtime agree. CRI cannot agree
before containerd has deleted the task, so asking starts with the task's TaskDelete: until then a
ContainerStatus call would only compete with the exit's status write for the CPU and containerd.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from cri.client import CRIClient
from cri.errors import CRIError, NotFound
from cri.events import ContainerdEvent, ContainerdEvents
from cri.gen import api_pb2

from agent.pleg import ExitCache

log = logging.getLogger(__name__)

TOPICS = ("/tasks/start", "/tasks/exit", "/tasks/oom", "/tasks/delete")
RETRY_INITIAL, RETRY_MAX = 0.5, 10.0
SETTLE_POLL, SETTLE_TIMEOUT = 0.02, 3.0
DELETE_WAIT = 0.5           # a TaskDelete missed (stream reconnected) delays the asking by this much


async def watch_task_events(endpoint: str, uid_of: Callable[[str], Awaitable[str | None]],
                            notify: Callable[[str, float], None], exits: ExitCache | None = None,
                            runtime: CRIClient | None = None) -> None:
    """Calls notify(pod uid, observed_at) for every task event of one of this node's sandboxes or
    containers (`uid_of` resolves an id to its pod, None for others')."""
    delay = RETRY_INITIAL
    settling: set[asyncio.Task[None]] = set()
    deleted: dict[str, asyncio.Event] = {}      # container id → its task was deleted (while settling)
    while True:
        try:
            async with ContainerdEvents(endpoint) as events:
                async for event in events.subscribe(TOPICS):
                    delay = RETRY_INITIAL
                    uid = await uid_of(event.container_id)
                    if not uid:
                        continue
                    now = time.monotonic()
                    log.debug("task event topic=%s container=%s pod_uid=%s exit_status=%s", event.topic,
                              event.container_id[:13], uid, event.exit_status)
                    if event.topic == "/tasks/delete" and event.init_process and event.container_id in deleted:
                        # The settling tells the pod once CRI agrees; a sync now would repeat the announced exit.
                        deleted[event.container_id].set()
                        continue
                    if exits is not None:
                        _record(exits, event, now)
                    notify(uid, now)
                    if runtime is not None and exits is not None and _is_exit(event):
                        task_deleted = deleted[event.container_id] = asyncio.Event()
                        task = asyncio.create_task(_notify_when_settled(runtime, exits, event.container_id, uid,
                                                                        notify, task_deleted))
                        settling.add(task)
                        task.add_done_callback(settling.discard)
                        task.add_done_callback(lambda _, cid=event.container_id: deleted.pop(cid, None))
        except asyncio.CancelledError:
            for task in settling:
                task.cancel()
            raise
        except Exception as error:  # noqa: BLE001 - reconnect; the relist covers the gap
            log.warning("containerd event stream failed error=%s retry_in=%.1fs", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)


def _is_exit(event: ContainerdEvent) -> bool:
    return event.topic == "/tasks/exit" and event.init_process


def _record(exits: ExitCache, event: ContainerdEvent, now: float) -> None:
    if _is_exit(event):
        exits.record_exit(event.container_id, event.exit_status or 0, event.exited_at, now)
    elif event.topic == "/tasks/oom":
        exits.record_oom(event.container_id, now)


async def _notify_when_settled(runtime: CRIClient, exits: ExitCache, container_id: str, uid: str,
                               notify: Callable[[str, float], None], deleted: asyncio.Event | None = None) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    if deleted is not None:
        try:
            await asyncio.wait_for(deleted.wait(), DELETE_WAIT)
        except asyncio.TimeoutError:
            pass
    while time.monotonic() < deadline:
        try:
            status = (await runtime.container_status(container_id)).status
        except NotFound:
            exits.settled(container_id)
            break
        except CRIError as error:
            log.debug("container status after exit failed container=%s error=%s", container_id, error)
            break
        if status.state != api_pb2.CONTAINER_RUNNING:
            exits.settled(container_id)
            break
        await asyncio.sleep(SETTLE_POLL)
    # Until CRI agrees, the announced exit stays (ExitCache forgets it after EXIT_MEMORY): dropping it
    # while CRI still said RUNNING would turn a terminated container's status back to running.
    notify(uid, time.monotonic())
