"""The node server's TLS: its serving certificate and the client certificates it accepts.

The serving certificate is self-signed the way kubelet makes one without a CA: a throwaway CA
`<node>-ca@<time>` signs `<node>@<time>`, and the certificate file holds both
(`<root-dir>/pki/kubelet.crt` and `kubelet.key`). Clients must present a certificate signed by the
cluster CA (`<root-dir>/pki/ca.crt`, from the join): kubelet's `--client-ca-file`.
"""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import time

from shipmate import pki

log = logging.getLogger(__name__)

CERT_NAME, KEY_NAME = "kubelet.crt", "kubelet.key"
VALID_SECONDS = 365 * 86400


def serving_names(node_name: str, addresses: list[str]) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of the serving certificate: the node name, localhost and every IP."""
    ips = list(dict.fromkeys([*addresses, "127.0.0.1"]))
    for address in ips:
        ipaddress.ip_address(address)
    return [node_name, "localhost"], ips


def self_signed_pair(node_name: str, addresses: list[str]) -> tuple[bytes, bytes]:
    """(certificate chain, key) PEM: the serving certificate followed by the throwaway CA that signed it."""
    stamp = int(time.time())
    ca_cert, ca_key = pki.make_ca(f"{node_name}-ca@{stamp}", days=VALID_SECONDS // 86400)
    dns_names, ips = serving_names(node_name, addresses)
    cert, key = pki.issue(ca_cert, ca_key, f"{node_name}@{stamp}", dns_names=dns_names, ip_addresses=ips,
                          server=True, seconds=VALID_SECONDS)
    return cert + ca_cert, key


def _write_pair(pki_dir: str, cert: str, key: str, node_name: str, addresses: list[str]) -> None:
    os.makedirs(pki_dir, 0o700, exist_ok=True)
    chain, key_pem = self_signed_pair(node_name, addresses)
    for path, data, mode in ((key, key_pem, 0o600), (cert, chain, 0o644)):
        tmp = f"{path}.tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as out:
            out.write(data)
        os.replace(tmp, path)


async def ensure_certificate(pki_dir: str, node_name: str, addresses: list[str]) -> tuple[str, str]:
    """Paths of the serving certificate and key, generating them when either is missing."""
    cert, key = os.path.join(pki_dir, CERT_NAME), os.path.join(pki_dir, KEY_NAME)
    if await asyncio.to_thread(lambda: os.path.exists(cert) and os.path.exists(key)):
        return cert, key
    await asyncio.to_thread(_write_pair, pki_dir, cert, key, node_name, addresses)
    log.info("node server certificate generated cert=%s node=%s", cert, node_name)
    return cert, key


def server_context(cert: str, key: str, client_ca_file: str) -> ssl.SSLContext:
    """TLS >= 1.2; every client must present a certificate chaining to the cluster CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.load_verify_locations(cafile=client_ca_file)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
