"""Root tasks run until the first one ends; the others are stopped; the ended one's error is reported."""
from __future__ import annotations

import asyncio

import pytest

from shipmate.supervisor import run_until_first_ends


async def forever() -> None:
    await asyncio.Event().wait()


async def fail() -> None:
    await asyncio.sleep(0)
    raise OSError("socket gone")


async def test_the_first_failure_is_reported_and_the_others_are_stopped() -> None:
    loops = [asyncio.create_task(forever(), name="a"), asyncio.create_task(fail(), name="b")]
    ended = await run_until_first_ends(loops)
    assert [(name, repr(error)) for name, error in ended] == [("b", repr(OSError("socket gone")))]
    assert loops[0].cancelled()


async def test_a_cancelled_supervisor_stops_its_tasks() -> None:
    loops = [asyncio.create_task(forever(), name="a")]
    supervisor = asyncio.create_task(run_until_first_ends(loops))
    await asyncio.sleep(0)
    supervisor.cancel()
    with pytest.raises(asyncio.CancelledError):
        await supervisor
    assert loops[0].cancelled()


async def test_a_task_cancelled_from_elsewhere_ends_without_an_error() -> None:
    loops = [asyncio.create_task(forever(), name="a"), asyncio.create_task(forever(), name="b")]
    await asyncio.sleep(0)
    loops[1].cancel()
    assert await run_until_first_ends(loops) == [("b", None)]
