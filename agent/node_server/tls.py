"""The node server's serving certificate: self-signed, made once with the openssl CLI, as kubelet does
without a CA (`<root-dir>/pki/kubelet.crt` and `kubelet.key`). Issue 6 replaces it with a CA-signed one."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import ssl
import time

log = logging.getLogger(__name__)

CERT_NAME, KEY_NAME = "kubelet.crt", "kubelet.key"
VALID_DAYS = 365


class CertificateError(RuntimeError):
    pass


def subject_alt_names(node_name: str, addresses: list[str]) -> str:
    """The subjectAltName extension value: the node name, localhost and every IP address."""
    entries = [f"DNS:{node_name}", "DNS:localhost"]
    for address in dict.fromkeys([*addresses, "127.0.0.1"]):
        ipaddress.ip_address(address)
        entries.append(f"IP:{address}")
    return ",".join(entries)


async def ensure_certificate(pki_dir: str, node_name: str, addresses: list[str]) -> tuple[str, str]:
    """Paths of the certificate and key, generating them when either is missing."""
    cert, key = os.path.join(pki_dir, CERT_NAME), os.path.join(pki_dir, KEY_NAME)
    if await asyncio.to_thread(lambda: os.path.exists(cert) and os.path.exists(key)):
        return cert, key
    await asyncio.to_thread(os.makedirs, pki_dir, 0o700, True)
    tmp_cert, tmp_key = f"{cert}.tmp", f"{key}.tmp"
    process = await asyncio.create_subprocess_exec(
        "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", tmp_key, "-out", tmp_cert, "-days", str(VALID_DAYS),
        "-subj", f"/CN={node_name}@{int(time.time())}",
        "-addext", f"subjectAltName={subject_alt_names(node_name, addresses)}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise CertificateError(f"openssl failed to make the node server certificate: {stderr.decode().strip()}")
    await asyncio.to_thread(os.chmod, tmp_key, 0o600)
    await asyncio.to_thread(os.replace, tmp_key, key)
    await asyncio.to_thread(os.replace, tmp_cert, cert)
    log.info("node server certificate generated cert=%s node=%s", cert, node_name)
    return cert, key


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
