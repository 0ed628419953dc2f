"""Programs pods' hostPorts from the CNI's records (netns/hostport.py): one nat transaction per change.

Level-triggered: every sync reads all records and rewrites both chains (tiny: one line per mapping),
skipping the restore when nothing changed and our jumps are in place. Called by the CNI service after
each ADD/DEL (the pod's containers start after its rules exist) and every `period` seconds; a failed
sync is retried with an exponential backoff.
"""
from __future__ import annotations

import asyncio
import logging

from netns.hostport import JUMPS, HostPortStore, render
from netns.iptables import Iptables, detect_backend

log = logging.getLogger(__name__)

NETWORK_NAME = "shipmate"


class HostPortManager:
    """`iptables` None: the backend is detected on first use (the CNI service starts before the proxy)."""

    def __init__(self, iptables: Iptables | None, ipam_dir: str, network: str = NETWORK_NAME, period: float = 30.0):
        self.iptables = iptables
        self.store = HostPortStore(ipam_dir, network)
        self.period = period
        self._applied: str | None = None
        self._lock = asyncio.Lock()

    async def sync(self, check_jumps: bool = False) -> None:
        """Brings the kernel in line with the records; raises when applying failed. Our jumps are
        checked when something changed or with `check_jumps` (periodic): the CNI calls this after every
        ADD/DEL, and `-C` on a big nat table is not free."""
        async with self._lock:
            if self.iptables is None:
                self.iptables = Iptables(await detect_backend())
            sandboxes = await asyncio.to_thread(self.store.sandboxes)
            desired = render(sandboxes)
            if desired == self._applied and not check_jumps:
                return
            missing = await self.iptables.missing_jumps(JUMPS)
            if desired == self._applied and not missing:
                return
            await self.iptables.restore(render(sandboxes, missing))
            self._applied = desired
            log.info("hostports synced sandboxes=%d mappings=%d", len(sandboxes),
                     sum(len(s.mappings) for s in sandboxes))

    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.sync(check_jumps=True)
                delay = 0.5
                await asyncio.sleep(self.period)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001
                self._applied = None
                log.error("hostport sync failed error=%s retry_in=%.1fs", error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.period)
