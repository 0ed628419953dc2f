"""Root tasks of a daemon: long-running loops that only end by failing. Both daemons (and the server's
control-plane term) run a set of them until the first ends, then stop the others."""
from __future__ import annotations

import asyncio
from typing import Sequence


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
