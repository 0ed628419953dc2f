"""The server's PKI at start: the cluster CA (kept in the datastore, shared by every server on it),
this server's serving certificate, its client certificate towards nodes, and the admin credentials.

The CA lives under `/shipmate/pki/ca` (outside `/registry/`, so no list or watch of API objects
sees it). The first server to start creates it with storage.create; every later one (or a second
server racing it) gets KeyExists and loads the winner's. Leaf certificates are files in
`<data-dir>/pki/`, reissued when missing, not signed by the CA, near expiry, or (serving
certificate) when the wanted SANs changed.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import logging
import os
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from apiserver.auth import jwt
from apiserver.node_tls import node_client_context
from apiserver.storage.interface import KeyExists, Storage
from shipmate import pki
from shipmate.files import read_if_exists, write_atomically

log = logging.getLogger(__name__)

CA_STORAGE_KEY = "/shipmate/pki/ca"
# The service account token signing key, shared like the CA: a token one server signs, every server validates.
SERVICE_ACCOUNT_KEY_STORAGE_KEY = "/shipmate/pki/service-account-key"
SERVER_COMMON_NAME = "kube-apiserver"
KUBELET_CLIENT_COMMON_NAME = "kube-apiserver-kubelet-client"
ADMIN_COMMON_NAME = "kubernetes-admin"
MASTERS_GROUP = "system:masters"
SERVICE_DNS_NAMES = ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                     "kubernetes.default.svc.cluster.local")
LEAF_SECONDS = 365 * 86400
# Reissue once this share of a certificate's lifetime has passed (as kubelet rotates at 70-90%).
RENEW_AFTER_FRACTION = 0.8


class PKIError(Exception):
    """The datastore's CA cannot be used (the server refuses to start)."""


@dataclass(frozen=True)
class LeafSpec:
    """One certificate this server keeps in its pki directory."""
    name: str  # file stem: <name>.crt / <name>.key
    common_name: str
    organizations: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    server: bool = False
    client: bool = False


@dataclass(frozen=True)
class ServerPKI:
    ca_cert_pem: bytes
    ca_key_pem: bytes
    directory: str

    def path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    @property
    def ca_cert_path(self) -> str:
        return self.path("ca.crt")

    @property
    def ca_key_path(self) -> str:
        return self.path("ca.key")

    @property
    def server_cert(self) -> str:
        return self.path("server.crt")

    @property
    def server_key(self) -> str:
        return self.path("server.key")

    @property
    def kubelet_client_cert(self) -> str:
        return self.path("apiserver-kubelet-client.crt")

    @property
    def kubelet_client_key(self) -> str:
        return self.path("apiserver-kubelet-client.key")

    @property
    def admin_cert(self) -> str:
        return self.path("admin.crt")

    @property
    def admin_key(self) -> str:
        return self.path("admin.key")

    def admin_credentials(self) -> tuple[bytes, bytes]:
        """The admin client certificate and key (PEM) for the admin kubeconfig."""
        with open(self.admin_cert, "rb") as cert, open(self.admin_key, "rb") as key:
            return cert.read(), key.read()

    def server_ssl_context(self) -> ssl.SSLContext:
        """HTTPS for the API: TLS >= 1.2; a client certificate is optional but, when sent, must chain
        to the cluster CA (upstream's VerifyClientCertIfGiven)."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(cadata=self.ca_cert_pem.decode())
        context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def kubelet_client_ssl_context(self, node_name: str) -> ssl.SSLContext:
        """TLS towards one node's server: presents the apiserver-kubelet-client certificate and verifies the
        node's kubelet-serving certificate (cluster CA, the dialed address, the node's name: node_tls.py)."""
        return node_client_context(self.ca_cert_pem, self.kubelet_client_cert, self.kubelet_client_key, node_name)


def server_sans(hostname: str, advertise_address: str, service_cluster_ip_range: str,
                extra_sans: Iterable[str] = ()) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(DNS names, IP addresses) the serving certificate must name; `extra_sans` (--tls-san) may be either."""
    first_service_ip = str(next(ipaddress.ip_network(service_cluster_ip_range).hosts()))
    dns_names, ips = list(SERVICE_DNS_NAMES), ["127.0.0.1", "::1"]
    for value in (hostname, advertise_address, first_service_ip, *extra_sans):
        if not value:
            continue
        try:
            ips.append(str(ipaddress.ip_address(value)))
        except ValueError:
            dns_names.append(value.lower())
    return tuple(dict.fromkeys(dns_names)), tuple(dict.fromkeys(ips))


def reissue_reason(cert_pem: bytes | None, ca_cert_pem: bytes, spec: LeafSpec, now: datetime.datetime) -> str:
    """Why the certificate on disk must be replaced ("" when it is still good)."""
    if cert_pem is None:
        return "missing"
    try:
        if not pki.verify_issued_by(cert_pem, ca_cert_pem):
            return "not signed by the cluster CA or outside its validity"
        not_before, not_after = pki.cert_validity(cert_pem)
        if now >= not_before + (not_after - not_before) * RENEW_AFTER_FRACTION:
            return f"expires at {not_after.isoformat()}"
        if pki.cert_subject(cert_pem) != (spec.common_name, spec.organizations):
            return "subject changed"
        dns_names, ips = pki.cert_sans(cert_pem)
    except ValueError as exc:
        return f"unreadable: {exc}"
    wanted_ips = {str(ipaddress.ip_address(ip)) for ip in spec.ip_addresses}
    if dns_names != set(spec.dns_names) or ips != wanted_ips:
        return "subject alternative names changed"
    return ""


async def load_or_create_ca(storage: Storage) -> tuple[bytes, bytes]:
    """The cluster CA from the datastore; the first server creates it (one winner if several race)."""
    stored = await storage.get(CA_STORAGE_KEY)
    if stored is None:
        cert_pem, key_pem = await asyncio.to_thread(pki.make_ca)
        value = json.dumps({"cert": cert_pem.decode(), "key": key_pem.decode()}).encode()
        try:
            await storage.create(CA_STORAGE_KEY, value)
            log.info("created the cluster CA key=%s hash=%s", CA_STORAGE_KEY, pki.ca_cert_hash(cert_pem))
            return cert_pem, key_pem
        except KeyExists:
            stored = await storage.get(CA_STORAGE_KEY)
            if stored is None:
                raise PKIError(f"{CA_STORAGE_KEY} reported as existing but could not be read") from None
    try:
        document = json.loads(stored.value)
        return document["cert"].encode(), document["key"].encode()
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PKIError(f"the cluster CA at {CA_STORAGE_KEY} is unreadable: {exc!r}") from None


async def load_or_create_service_account_key(storage: Storage) -> jwt.SigningKey:
    """The key service account tokens are signed with, from the datastore; the first server creates it (one
    winner if several race), as the CA."""
    stored = await storage.get(SERVICE_ACCOUNT_KEY_STORAGE_KEY)
    if stored is None:
        key = await asyncio.to_thread(jwt.SigningKey.generate)
        value = json.dumps({"key": key.pem().decode()}).encode()
        try:
            await storage.create(SERVICE_ACCOUNT_KEY_STORAGE_KEY, value)
            log.info("created the service account signing key key=%s kid=%s", SERVICE_ACCOUNT_KEY_STORAGE_KEY, key.kid)
            return key
        except KeyExists:
            stored = await storage.get(SERVICE_ACCOUNT_KEY_STORAGE_KEY)
            if stored is None:
                raise PKIError(f"{SERVICE_ACCOUNT_KEY_STORAGE_KEY} reported as existing but could not be read") from None
    try:
        return jwt.SigningKey.from_pem(json.loads(stored.value)["key"].encode())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PKIError(f"the service account key at {SERVICE_ACCOUNT_KEY_STORAGE_KEY} is unreadable: {exc!r}") from None


def ensure_leaf(server_pki: ServerPKI, spec: LeafSpec) -> None:
    cert_path, key_path = server_pki.path(spec.name + ".crt"), server_pki.path(spec.name + ".key")
    reason = reissue_reason(read_if_exists(cert_path), server_pki.ca_cert_pem, spec, datetime.datetime.now(datetime.timezone.utc))
    if not reason:
        return
    cert_pem, key_pem = pki.issue(server_pki.ca_cert_pem, server_pki.ca_key_pem, spec.common_name,
                                  spec.organizations, spec.dns_names, spec.ip_addresses, server=spec.server,
                                  client=spec.client, seconds=LEAF_SECONDS)
    write_atomically(key_path, key_pem, 0o600)
    write_atomically(cert_path, cert_pem, 0o644)
    log.info("issued certificate file=%s cn=%s reason=%s", cert_path, spec.common_name, reason)


def leaf_specs(advertise_address: str, service_cluster_ip_range: str, extra_sans: Iterable[str]) -> list[LeafSpec]:
    dns_names, ips = server_sans(socket.gethostname(), advertise_address, service_cluster_ip_range, extra_sans)
    return [LeafSpec("server", SERVER_COMMON_NAME, dns_names=dns_names, ip_addresses=ips, server=True),
            LeafSpec("apiserver-kubelet-client", KUBELET_CLIENT_COMMON_NAME, (MASTERS_GROUP,), client=True),
            LeafSpec("admin", ADMIN_COMMON_NAME, (MASTERS_GROUP,), client=True)]


def _write_files(server_pki: ServerPKI, specs: list[LeafSpec]) -> None:
    os.makedirs(server_pki.directory, mode=0o700, exist_ok=True)
    if read_if_exists(server_pki.ca_cert_path) != server_pki.ca_cert_pem:
        write_atomically(server_pki.ca_cert_path, server_pki.ca_cert_pem, 0o644)
    if read_if_exists(server_pki.ca_key_path) != server_pki.ca_key_pem:
        write_atomically(server_pki.ca_key_path, server_pki.ca_key_pem, 0o600)
    for spec in specs:
        ensure_leaf(server_pki, spec)


async def bootstrap(storage: Storage, data_dir: str, advertise_address: str, service_cluster_ip_range: str,
                    extra_sans: Iterable[str] = ()) -> ServerPKI:
    ca_cert_pem, ca_key_pem = await load_or_create_ca(storage)
    server_pki = ServerPKI(ca_cert_pem, ca_key_pem, os.path.join(data_dir, "pki"))
    await asyncio.to_thread(_write_files, server_pki,
                            leaf_specs(advertise_address, service_cluster_ip_range, extra_sans))
    return server_pki
