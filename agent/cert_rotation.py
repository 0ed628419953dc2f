"""Keeps the agent's certificates current, as kubelet's certificate managers do: the client certificate
(`kubelet-client-current.pem`, kubernetes.io/kube-apiserver-client-kubelet) and the node server's serving
certificate (`kubelet-server-current.pem`, kubernetes.io/kubelet-serving, SANs = the Node's addresses).

At a jittered 70–84% of a certificate's lifetime (kubelet's `0.7 * (1 + 0.2 * rand)`), or at once when there
is none yet (the first serving certificate), a new key and CSR are sent authenticated by the current client
certificate; the signed certificate atomically replaces the file and its user reloads it (no restart). A
client certificate that expired and cannot be renewed ends the agent (as kubelet exits), so its supervisor
restarts it into a fresh join; a serving certificate is just asked for again (the node server keeps serving
the old one, or waits for the first)."""
from __future__ import annotations

import asyncio
import datetime
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.bootstrap import (CLIENT_USAGES, KUBELET_CLIENT_SIGNER, KUBELET_SERVING_SIGNER, NODES_GROUP,
                             SERVING_USAGES, BootstrapError, CredentialPaths, csr_name, request_certificate,
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


@dataclass(frozen=True)
class CertificateKind:
    """What one rotated certificate is: its signer and usages, its file, and whether its expiry is fatal."""
    name: str
    signer: str
    usages: tuple[str, ...]
    path: Callable[[CredentialPaths], str]
    fatal_when_expired: bool


CLIENT = CertificateKind("client", KUBELET_CLIENT_SIGNER, tuple(CLIENT_USAGES), lambda p: p.client_pem, True)
SERVING = CertificateKind("serving", KUBELET_SERVING_SIGNER, tuple(SERVING_USAGES), lambda p: p.serving_pem, False)
Names = tuple[list[str], list[str]]     # (DNS names, IP addresses)


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
    kind: CertificateKind = CLIENT
    names: Callable[[], Names] = lambda: ([], [])   # the SANs to ask for (serving)
    on_rotated: Callable[[], None] | None = None     # default: the client reloads its credentials
    _deadlines: dict[datetime.datetime, datetime.datetime] = field(default_factory=dict)

    async def run(self) -> None:
        """A root task: sleeps until the current certificate's renewal time, renews, repeats."""
        delay = RETRY_MIN
        what = self.kind.name
        while True:
            cert_pem = await asyncio.to_thread(self._read_certificate)
            not_after = None
            if cert_pem is not None:
                not_before, not_after = pki.cert_validity(cert_pem)
                renew_at = self._renewal_time(not_before, not_after)
                wait = (renew_at - _now()).total_seconds()
                if wait > 0:
                    log.info("%s certificate rotation scheduled node=%s not_after=%s renew_at=%s", what,
                             self.node_name, not_after.isoformat(), renew_at.isoformat())
                    await asyncio.sleep(min(wait, LONGEST_SLEEP))
                    continue
            else:
                log.info("requesting a %s certificate node=%s signer=%s", what, self.node_name, self.kind.signer)
            try:
                await self.renew()
                delay = RETRY_MIN
            except asyncio.CancelledError:
                raise
            except BootstrapError as error:
                if self.kind.fatal_when_expired and not_after is not None and _now() >= not_after:
                    raise CertificateExpired(f"the {what} certificate expired at {not_after.isoformat()} and could "
                                             f"not be renewed ({error}); restart the agent with --token to join "
                                             "again") from None
                log.warning("%s certificate request failed node=%s error=%s retry_in=%.0fs", what, self.node_name,
                            error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX)

    def _renewal_time(self, not_before: datetime.datetime, not_after: datetime.datetime) -> datetime.datetime:
        """One jitter per certificate, so re-reading the same file does not move the time."""
        if not_after not in self._deadlines:
            self._deadlines = {not_after: renewal_time(not_before, not_after, self.jitter())}
        return self._deadlines[not_after]

    def _read_certificate(self) -> bytes | None:
        """The current certificate; None when there is none (or none that parses) yet."""
        try:
            with open(self.kind.path(self.paths), "rb") as handle:
                pem = handle.read()
            pki.cert_validity(pem)
            return pem
        except (FileNotFoundError, ValueError):
            if self.kind.fatal_when_expired:
                raise
            return None

    async def renew(self) -> None:
        key_pem = pki.new_key_pem()
        dns_names, ip_addresses = self.names()
        csr_pem = pki.make_csr(key_pem, f"system:node:{self.node_name}", (NODES_GROUP,), dns_names, ip_addresses)
        cert_pem = await request_certificate(self.client, csr_pem, csr_name("csr-", csr_pem), self.csr_timeout,
                                             signer=self.kind.signer, usages=self.kind.usages)
        await asyncio.to_thread(write_client_pem, self.kind.path(self.paths), cert_pem, key_pem)
        if self.on_rotated is not None:
            self.on_rotated()
        else:
            self.client.reload_credentials()
        not_before, not_after = pki.cert_validity(cert_pem)
        log.info("%s certificate rotated node=%s subject=%s not_before=%s not_after=%s", self.kind.name,
                 self.node_name, pki.cert_subject(cert_pem)[0], not_before.isoformat(), not_after.isoformat())
