"""containerd's task events (start, exit, OOM) as fast pod lifecycle signals; the relist stays the
safety net for anything missed while the stream was down."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

from cri.events import ContainerdEvents

log = logging.getLogger(__name__)

TOPICS = ("/tasks/start", "/tasks/exit", "/tasks/oom", "/tasks/delete")
RETRY_INITIAL, RETRY_MAX = 0.5, 10.0


async def watch_task_events(endpoint: str, uid_of: Callable[[str], str | None],
                            notify: Callable[[str, float], None]) -> None:
    """Calls notify(pod uid, observed_at) for every task event of a known sandbox or container.
    Events of objects the last relist did not see yet are left to the next relist."""
    delay = RETRY_INITIAL
    while True:
        try:
            async with ContainerdEvents(endpoint) as events:
                async for event in events.subscribe(TOPICS):
                    delay = RETRY_INITIAL
                    uid = uid_of(event.container_id)
                    if uid:
                        notify(uid, time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - reconnect; the relist covers the gap
            log.warning("containerd event stream failed error=%s retry_in=%.1fs", error, delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX)
