"""Bounded-frequency runner: kube-proxy's way to turn many change pokes into few syncs.

`run()` asks for a sync soon; requests that arrive while waiting merge into one. Syncs are at
least `min_interval` apart except for a small `burst`, at most `max_interval` apart (a periodic
resync even without changes), and a failed sync is retried after `retry_interval`.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class TokenBucket:
    """`burst` tokens, refilled one per `interval`; `clock` is injectable for tests."""
    burst: int
    interval: float
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _last: float = field(init=False)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._last = self.clock()

    def _refill(self) -> None:
        now = self.clock()
        if self.interval > 0:
            self._tokens = min(float(self.burst), self._tokens + (now - self._last) / self.interval)
        else:
            self._tokens = float(self.burst)
        self._last = now

    def try_take(self) -> bool:
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until a token is available (0 when one is)."""
        self._refill()
        return 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) * self.interval


class BoundedFrequencyRunner:
    """Calls `sync` (async; True on success) on request, rate-limited, periodically, with retry."""

    def __init__(self, name: str, sync: Callable[[], Awaitable[bool]], *, min_interval: float,
                 max_interval: float, burst: int = 2, retry_interval: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if burst < 1 or min_interval < 0 or max_interval <= 0:
            raise ValueError(f"runner {name}: need burst >= 1, min_interval >= 0, max_interval > 0")
        self.name = name
        self._sync = sync
        self._max_interval = max_interval
        self._retry_interval = max_interval if retry_interval is None else retry_interval
        self._clock = clock
        self._bucket = TokenBucket(burst, min_interval, clock)
        self._wake = asyncio.Event()
        self._requested = False
        self._retry_at: float | None = None

    def run(self) -> None:
        """Request a sync as soon as the rate limit allows (never blocks; requests merge)."""
        self._requested = True
        self._wake.set()

    def retry_after(self, seconds: float) -> None:
        at = self._clock() + seconds
        self._retry_at = at if self._retry_at is None else min(self._retry_at, at)
        self._wake.set()

    async def loop(self) -> None:
        """Run until cancelled. The first sync happens when first requested or after max_interval."""
        next_periodic = self._clock() + self._max_interval
        while True:
            now = self._clock()
            due = self._requested or now >= next_periodic or (
                self._retry_at is not None and now >= self._retry_at)
            if due:
                wait = self._bucket.wait_time()
                if wait <= 0 and self._bucket.try_take():
                    self._requested = False
                    self._retry_at = None
                    ok = await self._call()
                    next_periodic = self._clock() + self._max_interval
                    if not ok:
                        self.retry_after(self._retry_interval)
                    continue
                timeout = wait
            else:
                deadlines = [next_periodic] + ([self._retry_at] if self._retry_at is not None else [])
                timeout = max(0.0, min(deadlines) - now)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass

    async def _call(self) -> bool:
        try:
            return bool(await self._sync())
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sync failed runner=%s", self.name)
            return False
