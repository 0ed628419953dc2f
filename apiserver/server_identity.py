"""Per-server identity Leases (KEP-1965): `kube-system/apiserver-<hash>`, labelled
`apiserver.kubernetes.io/identity=kube-apiserver`, renewed by each server; the live ones say which servers
run, and where (the `kubernetes` Endpoints are built from them, see kubernetes_service.py).

Upstream keeps these leases for 3600 s and runs a separate 15 s "master lease" for the endpoint
reconciler. We use one lease for both, so its duration is short (30 s, renewed every 10 s: two missed
renewals tolerated): a killed server leaves the `kubernetes` Endpoints within 40 s instead of an hour.
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import socket
import uuid
from dataclasses import dataclass

from apiserver import errors
from apiserver.api import API
from apiserver.kinds.base import Obj
from shipmate.timeutil import micro_time, parse_rfc3339
from apiserver.registry import DeleteOptions
from shipmate.selectors import parse_label_selector

log = logging.getLogger(__name__)

NAMESPACE = "kube-system"
IDENTITY_LABEL = "apiserver.kubernetes.io/identity"
IDENTITY_VALUE = "kube-apiserver"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ADDRESS_ANNOTATION = "shipmate.io/advertise-address"  # "<ip>:<port>": upstream's leases carry no address
LEASE_DURATION_SECONDS = 30
RENEW_INTERVAL = 10.0


@dataclass(frozen=True)
class ServerAddress:
    ip: str
    port: int


def lease_name(hostname: str, address: ServerAddress) -> str:
    """`apiserver-<26 base32 chars of sha256>` as upstream, over hostname *and* address: upstream hashes
    the hostname alone, which would make two servers on one host share (and fight over) one lease."""
    digest = hashlib.sha256(f"{hostname}/{address.ip}:{address.port}".encode()).digest()
    return "apiserver-" + base64.b32encode(digest).decode().lower()[:26]


def desired_lease(name: str, holder: str, hostname: str, address: ServerAddress, now: datetime.datetime,
                  current: Obj | None) -> Obj:
    spec = {"holderIdentity": holder, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": micro_time(now)}
    metadata: Obj = {"name": name, "namespace": NAMESPACE,
                     "labels": {IDENTITY_LABEL: IDENTITY_VALUE, HOSTNAME_LABEL: hostname},
                     "annotations": {ADDRESS_ANNOTATION: f"{address.ip}:{address.port}"}}
    if current:
        metadata = {**current["metadata"], "labels": {**(current["metadata"].get("labels") or {}),
                                                      **metadata["labels"]},
                    "annotations": {**(current["metadata"].get("annotations") or {}), **metadata["annotations"]}}
        spec = {**(current.get("spec") or {}), **spec}
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}


def is_expired(lease: Obj, now: datetime.datetime) -> bool:
    spec = lease.get("spec") or {}
    renewed = parse_rfc3339(spec.get("renewTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    return renewed is None or renewed + datetime.timedelta(seconds=duration) <= now


def lease_address(lease: Obj) -> ServerAddress | None:
    text = ((lease["metadata"].get("annotations") or {}).get(ADDRESS_ANNOTATION) or "")
    ip, _, port = text.rpartition(":")
    if not ip or not port.isdigit():
        return None
    return ServerAddress(ip.strip("[]"), int(port))


def live_addresses(leases: list[Obj], now: datetime.datetime) -> list[ServerAddress]:
    """Addresses of the identity leases not yet expired, sorted (every server computes the same list)."""
    found = {lease_address(lease) for lease in leases
             if (lease["metadata"].get("labels") or {}).get(IDENTITY_LABEL) == IDENTITY_VALUE
             and not is_expired(lease, now)}
    return sorted((a for a in found if a), key=lambda a: (a.port, a.ip))


class ServerIdentity:
    """This process's identity lease."""

    def __init__(self, api: API, address: ServerAddress, hostname: str | None = None):
        self.api = api
        self.address = address
        self.hostname = hostname or socket.gethostname()
        self.name = lease_name(self.hostname, address)
        self.holder = f"{self.name}_{uuid.uuid4()}"
        self.registry = api.registry("coordination.k8s.io", "leases")

    async def renew(self, now: datetime.datetime) -> None:
        try:
            current = await self.registry.get(NAMESPACE, self.name)
        except errors.APIError as exc:
            if exc.code != 404:
                raise
            current = None
        body = desired_lease(self.name, self.holder, self.hostname, self.address, now, current)
        if current is None:
            await self.api.create(self.registry, NAMESPACE, body)
            log.info("identity lease created lease=%s/%s address=%s:%d", NAMESPACE, self.name, self.address.ip,
                     self.address.port)
        else:
            await self.api.update(self.registry, NAMESPACE, self.name, body)

    async def delete(self) -> None:
        try:
            await self.api.delete(self.registry, NAMESPACE, self.name, DeleteOptions())
        except errors.APIError as exc:
            if exc.code != 404:
                raise

    async def live_servers(self, now: datetime.datetime) -> list[ServerAddress]:
        """Every live server (this one always included), deleting identity leases long expired as
        upstream's apiserver lease garbage collector does."""
        leases, _ = await self.registry.list(NAMESPACE, parse_label_selector(f"{IDENTITY_LABEL}={IDENTITY_VALUE}"))
        for lease in leases:
            expired_for = now - (parse_rfc3339((lease.get("spec") or {}).get("renewTime")) or now)
            if lease["metadata"]["name"] != self.name and is_expired(lease, now) and \
                    expired_for > datetime.timedelta(seconds=2 * LEASE_DURATION_SECONDS):
                await self._delete(lease)
        servers = set(live_addresses(leases, now)) | {self.address}
        return sorted(servers, key=lambda a: (a.port, a.ip))

    async def _delete(self, lease: Obj) -> None:
        meta = lease["metadata"]
        try:
            await self.api.delete(self.registry, NAMESPACE, meta["name"],
                                  DeleteOptions(precondition_resource_version=meta.get("resourceVersion")))
            log.info("deleted expired identity lease lease=%s/%s", NAMESPACE, meta["name"])
        except errors.APIError as exc:
            if exc.code not in (404, 409):
                raise
