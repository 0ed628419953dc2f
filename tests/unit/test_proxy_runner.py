"""Bounded-frequency runner: merges requests, rate-limits, resyncs periodically, retries."""
import asyncio

import pytest

from agent.proxy.runner import BoundedFrequencyRunner, TokenBucket


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_token_bucket_burst_then_refill():
    clock = FakeClock()
    bucket = TokenBucket(burst=2, interval=1.0, clock=clock)
    assert bucket.try_take() and bucket.try_take()
    assert not bucket.try_take()
    assert bucket.wait_time() == pytest.approx(1.0)
    clock.now += 0.5
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.try_take()
    clock.now += 10
    assert bucket.try_take() and bucket.try_take() and not bucket.try_take()  # capped at burst


class Recorder:
    def __init__(self, results=()):
        self.calls: list[float] = []
        self.results = list(results)

    async def __call__(self):
        self.calls.append(asyncio.get_running_loop().time())
        return self.results.pop(0) if self.results else True


async def run_for(runner, seconds, poke=None):
    task = asyncio.create_task(runner.loop())
    try:
        if poke:
            await poke()
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_requests_merge_and_are_rate_limited():
    sync = Recorder()
    runner = BoundedFrequencyRunner("t", sync, min_interval=0.2, max_interval=60, burst=1)

    async def poke():
        for _ in range(20):
            runner.run()
            await asyncio.sleep(0.01)

    await run_for(runner, 0.1, poke)
    # 20 pokes over 0.2 s with one token and a 0.2 s interval: the first runs at once, the
    # rest merge into one more sync once a token is back.
    assert len(sync.calls) == 2
    assert sync.calls[1] - sync.calls[0] >= 0.18


async def test_burst_allows_back_to_back_syncs():
    sync = Recorder()
    runner = BoundedFrequencyRunner("t", sync, min_interval=10, max_interval=60, burst=2)

    async def poke():
        runner.run()
        await asyncio.sleep(0.02)
        runner.run()
        await asyncio.sleep(0.02)
        runner.run()  # no token left for 10 s

    await run_for(runner, 0.1, poke)
    assert len(sync.calls) == 2


async def test_periodic_sync_without_requests():
    sync = Recorder()
    runner = BoundedFrequencyRunner("t", sync, min_interval=0, max_interval=0.05, burst=1)
    await run_for(runner, 0.18)
    assert 2 <= len(sync.calls) <= 4


async def test_failure_is_retried_after_retry_interval():
    sync = Recorder(results=[False, True])
    runner = BoundedFrequencyRunner("t", sync, min_interval=0, max_interval=60, burst=5, retry_interval=0.05)

    async def poke():
        runner.run()

    await run_for(runner, 0.15, poke)
    assert len(sync.calls) == 2
    assert sync.calls[1] - sync.calls[0] >= 0.045


async def test_exception_counts_as_failure_and_loop_survives():
    calls = []

    async def boom():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("iptables exploded")
        return True

    runner = BoundedFrequencyRunner("t", boom, min_interval=0, max_interval=60, retry_interval=0.03)
    await run_for(runner, 0.1, poke=lambda: asyncio.sleep(0, runner.run()))
    assert len(calls) == 2
