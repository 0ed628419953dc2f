"""How much each TLS connection holds for reading.

asyncio's SSLProtocol reads the socket into a buffer of `SSLProtocol.max_size` bytes (256 KiB in CPython
3.11), allocated and zero-filled for every connection as it is accepted: with the ~170 connections
of the hostile soak open (watch storms), that alone was ~45 MB, most of the server's RSS above its start.
A TLS record carries at most 16 KiB of plaintext, so a 32 KiB buffer still takes two records a read; a
3 MiB body only needs more reads. The setting is process-wide (asyncio has no per-server knob): it also
covers the server's own asyncio TLS clients (the pod proxy to node servers); etcd's gRPC is not asyncio's."""
from __future__ import annotations

import logging
from asyncio import sslproto

log = logging.getLogger(__name__)

TLS_READ_BUFFER_BYTES = 32 * 1024


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER_BYTES) -> None:
    current = getattr(sslproto.SSLProtocol, "max_size", None)
    if not isinstance(current, int):
        log.warning("asyncio's SSLProtocol has no max_size; TLS connections keep its own read buffer size")
        return
    sslproto.SSLProtocol.max_size = min(current, size)
