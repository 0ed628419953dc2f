"""The agent's API credentials at start: an explicit `--kubeconfig`, the certificate an earlier join
left in `<root-dir>`, or a join with a bootstrap token (kubelet's TLS bootstrap, kubeadm's discovery).

A join trusts the cluster CA from `--ca-file`, or fetches `/cacerts` and pins it with
`--ca-cert-hash`; makes a key and a CSR (CN `system:node:<node>`, O `system:nodes`); posts it with the
token as bearer; waits for `status.certificate`; and writes `<root-dir>/pki/kubelet-client-current.pem`
(certificate + key, 0600), `<root-dir>/pki/ca.crt` and `<root-dir>/kubelet.kubeconfig`. Later starts
use these without a token. `request_certificate` and `write_client_pem` serve the rotation too.
"""
from __future__ import annotations

import asyncio
import base64
import datetime
import enum
import hashlib
import logging
import os
import re
import ssl
import tempfile
import time
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import yaml

from agent.config import AgentConfig
from shipmate import pki
from shipmate.files import read_if_exists, write_atomically
from shipmate.kubeclient import (FAILOVER_ERRORS, AlreadyExists, ApiError, Forbidden, KubeClient, KubeConfig,
                                 NotFound, Resource, ServerError, Unauthorized, load_kubeconfig, parse_servers,
                                 use_servers)

log = logging.getLogger(__name__)

Obj = dict[str, Any]
T = TypeVar("T")
CSRS = Resource("certificates.k8s.io/v1", "certificatesigningrequests", namespaced=False)
KUBELET_CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client-kubelet"
CLIENT_USAGES = ["digital signature", "client auth"]
KUBELET_SERVING_SIGNER = "kubernetes.io/kubelet-serving"
SERVING_USAGES = ["digital signature", "server auth"]     # an EC key: no key encipherment (upstream's rule)
NODES_GROUP = "system:nodes"
JOIN_TIMEOUT = 900.0            # how long a join keeps trying (server not up yet, CSR not signed yet)
CSR_POLL_PERIOD = 0.5
RETRY_MAX = 10.0


class BootstrapError(Exception):
    """The agent cannot get credentials; the message says why and what to do."""


@dataclass(frozen=True)
class CredentialPaths:
    root_dir: str

    @property
    def pki_dir(self) -> str:
        return os.path.join(self.root_dir, "pki")

    @property
    def client_pem(self) -> str:
        return os.path.join(self.pki_dir, "kubelet-client-current.pem")

    @property
    def serving_pem(self) -> str:
        """The node server's kubelet-serving certificate + key (kubelet's kubelet-server-current.pem)."""
        return os.path.join(self.pki_dir, "kubelet-server-current.pem")

    @property
    def ca_cert(self) -> str:
        return os.path.join(self.pki_dir, "ca.crt")

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.root_dir, "kubelet.kubeconfig")


@dataclass(frozen=True)
class Credentials:
    kubeconfig: KubeConfig
    ca_file: str            # the cluster CA, also what the node server checks client certificates against
    rotate: bool            # the agent owns the client certificate (joined): renew it before it expires


class Plan(enum.Enum):
    USE_KUBECONFIG = "use --kubeconfig"
    USE_EXISTING = "use the certificate of an earlier join"
    JOIN = "join with the bootstrap token"


class CertState(enum.Enum):
    MISSING = "missing"
    VALID = "valid"
    EXPIRED = "expired"
    UNTRUSTED = "not issued by the trusted CA"


# ---------------------------------------------------------------- decisions (pure)

def cert_state(pem: bytes | None, trusted_cas: list[bytes] | None, now: datetime.datetime) -> CertState:
    """The state of an earlier join's certificate. `trusted_cas`: the CAs it must be issued by (None:
    the flags name no CA; empty: the flags pin a CA the earlier join did not trust)."""
    if pem is None:
        return CertState.MISSING
    try:
        _not_before, not_after = pki.cert_validity(pem)
    except ValueError:
        return CertState.MISSING
    if now >= not_after:
        return CertState.EXPIRED
    if trusted_cas is not None and not any(pki.verify_issued_by(pem, ca) for ca in trusted_cas):
        return CertState.UNTRUSTED
    return CertState.VALID


def plan(kubeconfig_flag: str | None, state: CertState, token: str | None, paths: CredentialPaths) -> Plan:
    if kubeconfig_flag:
        return Plan.USE_KUBECONFIG
    if state is CertState.VALID:
        return Plan.USE_EXISTING
    if token:
        return Plan.JOIN
    if state is CertState.MISSING:
        raise BootstrapError(f"no credentials: {paths.kubeconfig} does not exist yet; join the cluster with "
                             "--token <id.secret> (from `shipmate token create`) and --ca-cert-hash or --ca-file, "
                             "or give --kubeconfig")
    raise BootstrapError(f"the client certificate {paths.client_pem} is {state.value}; join again with --token "
                         "<id.secret> (from `shipmate token create`)")


def csr_name(prefix: str, csr_pem: bytes) -> str:
    """A name derived from the request, so a retried POST of the same CSR finds the first one."""
    return prefix + hashlib.sha256(csr_pem).hexdigest()[:32]


def csr_object(name: str, csr_pem: bytes, signer: str = KUBELET_CLIENT_SIGNER,
               usages: tuple[str, ...] | list[str] = tuple(CLIENT_USAGES)) -> Obj:
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": name},
            "spec": {"request": base64.b64encode(csr_pem).decode(), "signerName": signer, "usages": list(usages)}}


def issued_certificate(csr: Obj) -> bytes | None:
    """The signed certificate once there is one; BootstrapError when the CSR was denied or failed."""
    name = csr.get("metadata", {}).get("name", "")
    status = csr.get("status") or {}
    for condition in status.get("conditions") or []:
        if condition.get("type") in ("Denied", "Failed") and condition.get("status", "True") == "True":
            raise BootstrapError(f'certificate signing request "{name}" was {condition["type"].lower()}: '
                                 f'{condition.get("reason", "")}: {condition.get("message", "")}'.rstrip(": "))
    certificate = status.get("certificate")
    return base64.b64decode(certificate) if certificate else None


def ca_matching_hash(bundle: bytes, wanted: str) -> bytes:
    """The certificate of a PEM bundle whose SubjectPublicKeyInfo hash is `wanted`."""
    found = []
    for block in re.findall(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", bundle, re.S):
        cert = block + b"\n"
        digest = pki.ca_cert_hash(cert)
        if digest.lower() == wanted.lower():
            return cert
        found.append(digest)
    raise BootstrapError(f"the cluster CA does not match --ca-cert-hash {wanted}: the server offers "
                         f"{', '.join(found) or 'no certificate'}; is --server the right cluster?")


def kubeconfig_document(server: str, ca_pem: bytes, client_pem_path: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "shipmate", "cluster": {
                "server": server, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
            "users": [{"name": "default-auth", "user": {"client-certificate": client_pem_path,
                                                        "client-key": client_pem_path}}],
            "contexts": [{"name": "default-context", "context": {"cluster": "shipmate", "user": "default-auth"}}],
            "current-context": "default-context"}


# ---------------------------------------------------------------- files

def write_client_pem(path: str, cert_pem: bytes, key_pem: bytes) -> None:
    """Replaces a certificate + key file (client or serving) atomically, once the pair is known to load."""
    data = cert_pem.rstrip(b"\n") + b"\n" + key_pem
    with tempfile.TemporaryDirectory(prefix="shipmate-pem-") as scratch:
        probe = os.path.join(scratch, "pair.pem")
        with open(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(data)
        try:
            ssl.create_default_context(ssl.Purpose.SERVER_AUTH).load_cert_chain(probe)
        except ssl.SSLError as error:
            raise BootstrapError(f"the issued certificate does not match our key: {error}") from None
    write_atomically(path, data, 0o600, dir_mode=0o700)


def _read_joined_pem(paths: CredentialPaths) -> bytes | None:
    """The client certificate of an earlier join, if that join completed (kubeconfig written last)."""
    return read_if_exists(paths.client_pem) if os.path.exists(paths.kubeconfig) else None


def _read_ca_file(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            pem = handle.read()
        pki.cert_validity(pem)
    except (OSError, ValueError) as error:
        raise BootstrapError(f"--ca-file {path}: not a readable PEM certificate: {error}") from None
    return pem


def _trusted_cas(config: AgentConfig, paths: CredentialPaths) -> list[bytes] | None:
    """The CAs the flags say to trust, as far as they are known before any network call: --ca-file,
    or the CA an earlier join saved when it matches --ca-cert-hash."""
    if config.ca_file:
        return [_read_ca_file(config.ca_file)]
    if not config.ca_cert_hash:
        return None
    saved = read_if_exists(paths.ca_cert)
    try:
        return [ca_matching_hash(saved, config.ca_cert_hash)] if saved is not None else []
    except (BootstrapError, ValueError):
        return []


# ---------------------------------------------------------------- network

async def fetch_pinned_ca(servers: tuple[str, ...], ca_cert_hash: str) -> bytes:
    """GET /cacerts without verifying the server (the answer is verified by its hash instead)."""
    first, *extra = servers
    insecure = KubeConfig(server=first, extra_servers=tuple(extra), insecure_skip_tls_verify=True)
    async with KubeClient(insecure, user_agent="shipmate-agent-bootstrap") as client:
        return ca_matching_hash(await client.get_raw("/cacerts"), ca_cert_hash)


async def request_certificate(client: KubeClient, csr_pem: bytes, name: str, timeout: float,
                              poll: float = CSR_POLL_PERIOD, signer: str = KUBELET_CLIENT_SIGNER,
                              usages: tuple[str, ...] | list[str] = tuple(CLIENT_USAGES)) -> bytes:
    """Creates the CSR (or finds it, when a retry meets the first attempt's) and waits until it is
    signed. Unreachable servers are retried until `timeout`; 401/403 and a denied CSR are final."""
    deadline = time.monotonic() + timeout
    created = False
    delay = poll
    while True:
        try:
            if not created:
                try:
                    await client.create(CSRS, csr_object(name, csr_pem, signer, usages))
                    log.info("certificate signing request created csr=%s server=%s", name, client.server)
                except AlreadyExists:
                    pass        # our own earlier attempt, whose answer was lost
                created = True
            certificate = issued_certificate(await client.get(CSRS, name))
            if certificate is not None:
                return certificate
            delay = poll
        except (Unauthorized, Forbidden) as error:
            raise BootstrapError(f'the API server refused certificate signing request "{name}": {error.code} '
                                 f"{error.reason}: {error.message}") from None
        except NotFound:
            created = False       # deleted (e.g. by a cleaner) before it was signed: ask again
        except (ServerError, *FAILOVER_ERRORS) as error:
            log.warning("API server not answering the certificate request csr=%s error=%r retry_in=%.1fs",
                        name, error, delay)
            delay = min(delay * 2, RETRY_MAX)
        except ApiError as error:
            raise BootstrapError(f'the API server rejected certificate signing request "{name}": {error}') from None
        if time.monotonic() + delay > deadline:
            raise BootstrapError(f'timed out after {timeout:.0f}s waiting for certificate signing request "{name}" '
                                 "to be approved and signed")
        await asyncio.sleep(delay)


async def join(config: AgentConfig, paths: CredentialPaths, timeout: float = JOIN_TIMEOUT) -> None:
    servers = parse_servers(config.server or "")
    if config.ca_file:
        ca_pem = _read_ca_file(config.ca_file)
        if config.ca_cert_hash:
            ca_pem = ca_matching_hash(ca_pem, config.ca_cert_hash)
    elif config.ca_cert_hash:
        ca_pem = await _retry_until(timeout, "fetching the cluster CA",
                                    lambda: fetch_pinned_ca(servers, config.ca_cert_hash))
    else:
        raise BootstrapError("--token needs --ca-cert-hash or --ca-file to know the cluster CA")
    key_pem = pki.new_key_pem()
    csr_pem = pki.make_csr(key_pem, f"system:node:{config.node_name}", (NODES_GROUP,))
    first, *extra = servers
    bootstrap = KubeConfig(server=first, extra_servers=tuple(extra), certificate_authority_data=ca_pem,
                           token=config.token)
    log.info("joining the cluster node=%s server=%s", config.node_name, first)
    async with KubeClient(bootstrap, user_agent="shipmate-agent-bootstrap") as client:
        cert_pem = await request_certificate(client, csr_pem, csr_name("node-csr-", csr_pem), timeout)
    await asyncio.to_thread(_write_join_result, paths, first, ca_pem, cert_pem, key_pem)
    not_after = pki.cert_validity(cert_pem)[1]
    log.info("joined the cluster node=%s subject=%s not_after=%s", config.node_name,
             pki.cert_subject(cert_pem)[0], not_after.isoformat())


def _write_join_result(paths: CredentialPaths, server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes) -> None:
    write_atomically(paths.ca_cert, ca_pem, 0o644)
    write_client_pem(paths.client_pem, cert_pem, key_pem)
    document = kubeconfig_document(server, ca_pem, os.path.abspath(paths.client_pem))
    write_atomically(paths.kubeconfig, yaml.safe_dump(document).encode(), 0o600)


async def _retry_until(timeout: float, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
    """`attempt()` until it succeeds, retrying unreachable or failing servers until `timeout`."""
    deadline = time.monotonic() + timeout
    delay = CSR_POLL_PERIOD
    while True:
        try:
            return await attempt()
        except (ServerError, *FAILOVER_ERRORS) as error:
            if time.monotonic() + delay > deadline:
                raise BootstrapError(f"timed out after {timeout:.0f}s {what}: {error!r}") from None
            log.warning("%s failed error=%r retry_in=%.1fs", what, error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)
        except ApiError as error:
            raise BootstrapError(f"{what} failed: {error}") from None


# ---------------------------------------------------------------- entry point

async def load_credentials(config: AgentConfig, timeout: float = JOIN_TIMEOUT) -> Credentials:
    """The client config the agent runs with, joining first when needed (see the module doc)."""
    paths = CredentialPaths(config.root_dir)
    trusted = await asyncio.to_thread(_trusted_cas, config, paths)
    joined = await asyncio.to_thread(_read_joined_pem, paths)
    state = cert_state(joined, trusted, datetime.datetime.now(datetime.timezone.utc))
    decision = plan(config.kubeconfig, state, config.token, paths)
    log.info("credentials node=%s plan=%r certificate=%s", config.node_name, decision.value, state.value)
    if decision is Plan.USE_KUBECONFIG:
        kubeconfig = _with_server_flag(await asyncio.to_thread(load_kubeconfig, config.kubeconfig), config.server)
        await asyncio.to_thread(_save_cluster_ca, config, kubeconfig, paths)
        return Credentials(kubeconfig, paths.ca_cert, rotate=False)
    if decision is Plan.JOIN:
        await join(config, paths, timeout)
    elif trusted:
        await asyncio.to_thread(write_atomically, paths.ca_cert, trusted[0], 0o644)
    kubeconfig = _with_server_flag(await asyncio.to_thread(load_kubeconfig, paths.kubeconfig), config.server)
    return Credentials(kubeconfig, paths.ca_cert, rotate=True)


def _with_server_flag(kubeconfig: KubeConfig, server_flag: str | None) -> KubeConfig:
    """`--server` overrides the kubeconfig's server (and adds failover targets)."""
    return use_servers(kubeconfig, server_flag) if server_flag else kubeconfig


def _save_cluster_ca(config: AgentConfig, kubeconfig: KubeConfig, paths: CredentialPaths) -> None:
    """The node server checks client certificates against the cluster CA: --ca-file, else the
    kubeconfig's certificate authority."""
    if config.ca_file:
        ca_pem = _read_ca_file(config.ca_file)
    elif kubeconfig.certificate_authority_data:
        ca_pem = kubeconfig.certificate_authority_data
    elif kubeconfig.certificate_authority:
        ca_pem = _read_ca_file(kubeconfig.certificate_authority)
    else:
        raise BootstrapError(f"the kubeconfig {config.kubeconfig} names no certificate authority and no --ca-file "
                             "was given: the node server needs the cluster CA to check client certificates")
    write_atomically(paths.ca_cert, ca_pem, 0o644)
