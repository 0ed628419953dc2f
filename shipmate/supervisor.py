"""Root tasks of a daemon: long-running loops that only end by failing. Both daemons (and the server's
control-plane term) run a set of them until the first ends, then stop the others."""
from __future__ import annotations

import asyncio
import signal
from typing import Sequence


def cancel_on_signals() -> None:
    """SIGTERM and SIGINT cancel the calling task (a daemon's main coroutine), which then stops through its own
    `finally` blocks; without handlers a PID 1 in a container would ignore SIGTERM until it is killed."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, task.cancel)


async def stop_tasks(tasks: Sequence[asyncio.Task]) -> None:
    """Cancel the tasks and wait until every one has ended (their errors are not raised)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_until_first_ends(tasks: Sequence[asyncio.Task]) -> list[tuple[str, BaseException | None]]:
    """Wait until one of the tasks ends, stop the others (also when this wait is cancelled) and return each
    ended task's name with the error it ended with (None: it returned or was cancelled)."""
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return [(task.get_name(), None if task.cancelled() else task.exception()) for task in done]
    finally:
        await stop_tasks(tasks)
