"""Renews the agent's client certificate before it expires, as kubelet's certificate manager does:
at a jittered 70–84% of its lifetime (kubelet's `0.7 * (1 + 0.2 * rand)`), a new key and CSR are
sent authenticated by the current certificate; the signed certificate atomically replaces
`kubelet-client-current.pem` and the running KubeClient reloads it (no restart). A certificate that
expired and cannot be renewed ends the agent (as kubelet exits), so its supervisor restarts it into a
fresh join."""
from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.bootstrap import (NODES_GROUP, BootstrapError, CredentialPaths, csr_name, request_certificate,
                             write_client_pem)
from shipmate import pki
from shipmate.kubeclient import KubeClient

log = logging.getLogger(__name__)

RENEW_AT, RENEW_JITTER = 0.7, 0.2       # renew at 70% of the lifetime plus up to 20% of that (kubelet's)
CSR_TIMEOUT = 300.0
RETRY_MIN, RETRY_MAX = 1.0, 300.0
LONGEST_SLEEP = 3600.0                  # look at the file again at least hourly


class CertificateExpired(RuntimeError):
    pass


def renewal_time(not_before: datetime.datetime, not_after: datetime.datetime, jitter: float) -> datetime.datetime:
    """When to renew: `jitter` in [0, 1) picks a point between 70% and 84% of the lifetime."""
    return not_before + (not_after - not_before) * (RENEW_AT * (1 + RENEW_JITTER * jitter))


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


@dataclass
class CertificateRotator:
    client: KubeClient
    paths: CredentialPaths
    node_name: str
    jitter: Callable[[], float] = random.random
    csr_timeout: float = CSR_TIMEOUT
    _deadlines: dict[datetime.datetime, datetime.datetime] = field(default_factory=dict)

    async def run(self) -> None:
        """A root task: sleeps until the current certificate's renewal time, renews, repeats."""
        delay = RETRY_MIN
        while True:
            cert_pem = await asyncio.to_thread(self._read_certificate)
            not_before, not_after = pki.cert_validity(cert_pem)
            renew_at = self._renewal_time(not_before, not_after)
            wait = (renew_at - _now()).total_seconds()
            if wait > 0:
                log.info("client certificate rotation scheduled node=%s not_after=%s renew_at=%s", self.node_name,
                         not_after.isoformat(), renew_at.isoformat())
                await asyncio.sleep(min(wait, LONGEST_SLEEP))
                continue
            try:
                await self.renew()
                delay = RETRY_MIN
            except asyncio.CancelledError:
                raise
            except BootstrapError as error:
                if _now() >= not_after:
                    raise CertificateExpired(f"the client certificate expired at {not_after.isoformat()} and could "
                                             f"not be renewed ({error}); restart the agent with --token to join "
                                             "again") from None
                log.warning("client certificate renewal failed node=%s error=%s retry_in=%.0fs", self.node_name,
                            error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _renewal_time(self, not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
        """One jitter per certificate, so re-reading the same file does not move the time."""
        if not_after not in self._deadlines:
            self._deadlines = {not_after: renewal_time(not_before, not_after, self.jitter())}
        return self._deadlines[not_after]

    def _read_certificate(self) -> bytes:
        with open(self.paths.client_pem, "rb") as handle:
            return handle.read()

    async def renew(self) -> None:
        key_pem = pki.new_key_pem()
        csr_pem = pki.make_csr(key_pem, f"system:node:{self.node_name}", (NODES_GROUP,))
        cert_pem = await request_certificate(self.client, csr_pem, csr_name("csr-", csr_pem), self.csr_timeout)
        await asyncio.to_thread(write_client_pem, self.paths.client_pem, cert_pem, key_pem)
        self.client.reload_credentials()
        not_before, not_after = pki.cert_validity(cert_pem)
        log.info("client certificate rotated node=%s subject=%s not_before=%s not_after=%s", self.node_name,
                 pki.cert_subject(cert_pem)[0], not_before.isoformat(), not_after.isoformat())
