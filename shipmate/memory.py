"""How a daemon's heap gives memory back (glibc malloc; a no-op elsewhere).

Request bodies and responses take blocks of 64 KiB and more. glibc serves blocks that size from mmap only
up to a threshold that it raises each time such a block is freed, after which they come from the heap,
whose freed pages are rarely returned: RSS then keeps every past peak of requests. A fixed threshold and a
trim after each collection of closed connections (serving.ConnectionLimiter) return them. The agent trims
every 10 s: pods that came and went (a node filled to 110 pods and drained) left ~30 MiB it never
gave back."""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 64 * 1024
TRIM_THRESHOLD_BYTES = 128 * 1024


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _libc()


def limit_heap_retention() -> None:
    if _LIBC is None:
        return
    if not (_LIBC.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) and _LIBC.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)):
        log.warning("mallopt refused the mmap/trim thresholds; freed buffers may stay in RSS")


def release_freed_memory() -> None:
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
