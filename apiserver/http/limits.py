"""What one request or client may make the server hold: request body bytes (413), open watches per user
(429), requests in flight (429), and how long a connection may sit idle or in its TLS handshake."""
from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

from aiohttp import web

from apiserver import errors

# kube-apiserver's limit on request bodies (genericapiserver Config.MaxRequestBodyBytes: 3 MiB).
MAX_REQUEST_BODY_BYTES = 3 * 1024 * 1024
_READ_CHUNK = 64 * 1024
# Open watches per user (the authenticated name; by address when there is none) and in total. A node agent
# holds ~10, kubectl one; past these a new watch gets 429 and the client retries, as with kube-apiserver's
# max-in-flight limits.
MAX_WATCHES_PER_CLIENT = 500
MAX_WATCHES = 5000


def request_entity_too_large(limit: int) -> errors.APIError:
    return errors.APIError(413, "RequestEntityTooLarge", f"Request entity too large: limit is {limit}")


def too_many_requests(retry_after_seconds: int = 1) -> errors.APIError:
    return errors.APIError(429, "TooManyRequests", "Too many requests, please try again later.",
                           {"retryAfterSeconds": retry_after_seconds},
                           headers={"Retry-After": str(retry_after_seconds)})


async def read_body(request: web.Request, limit: int = MAX_REQUEST_BODY_BYTES) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed `limit` (a declared
    Content-Length, or the bytes read so far): never more than `limit` + one chunk is held."""
    if request.content_length is not None and request.content_length > limit:
        raise request_entity_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise request_entity_too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def client_key(request: web.Request) -> str:
    """Whose watch this is: the user (whatever connection or User-Agent it uses), else the address."""
    user = request.get("user")
    return f"user {user.name}" if user is not None else f"address {request.remote or ''}"


# kube-apiserver's --max-requests-inflight / --max-mutating-requests-inflight defaults.
MAX_REQUESTS_INFLIGHT = 400
MAX_MUTATING_REQUESTS_INFLIGHT = 200
_MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Upstream's long-running check: watches and these subresources are never counted in flight.
_LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})
SYSTEM_MASTERS = "system:masters"


def is_long_running(request: web.Request) -> bool:
    if request.query.get("watch") in ("1", "true", "True"):
        return True
    parts = request.path.rstrip("/").rsplit("/", 2)
    return len(parts) == 3 and parts[2] in _LONG_RUNNING_SUBRESOURCES


@dataclass
class InflightLimiter:
    """Upstream's max-in-flight filter: at most `max_reads` non-mutating and `max_mutating` mutating
    requests are served at once (0: no limit); past that a request gets 429 with Retry-After: 1. Long-running
    requests are not counted, and system:masters is always answered (a super-admin must get through)."""
    max_reads: int = MAX_REQUESTS_INFLIGHT
    max_mutating: int = MAX_MUTATING_REQUESTS_INFLIGHT
    reads: int = 0
    mutating: int = 0

    @contextlib.contextmanager
    def hold(self, mutating: bool, exempt: bool = False) -> Iterator[None]:
        attribute, limit = ("mutating", self.max_mutating) if mutating else ("reads", self.max_reads)
        if exempt or not limit:
            yield
            return
        if getattr(self, attribute) >= limit:
            raise too_many_requests()
        setattr(self, attribute, getattr(self, attribute) + 1)
        try:
            yield
        finally:
            setattr(self, attribute, getattr(self, attribute) - 1)

    @web.middleware
    async def middleware(self, request: web.Request, handler):
        """Runs after authentication (it needs the user's groups)."""
        if is_long_running(request):
            return await handler(request)
        user = request.get("user")
        with self.hold(request.method in _MUTATING_METHODS, user is not None and SYSTEM_MASTERS in user.groups):
            return await handler(request)


# Connections: an idle keep-alive connection, and a new connection that has not sent its request headers,
# are closed after HEADER_READ_TIMEOUT (upstream's ReadHeaderTimeout; aiohttp has one timer for both, so idle
# connections go sooner than upstream's 90 s IdleTimeout). A TLS handshake must finish in TLS_HANDSHAKE_TIMEOUT.
HEADER_READ_TIMEOUT = 32.0
TLS_HANDSHAKE_TIMEOUT = 10.0


@dataclass
class WatchLimiter:
    per_client: int = MAX_WATCHES_PER_CLIENT
    total: int = MAX_WATCHES
    _open: Counter = field(default_factory=Counter)

    @property
    def open_watches(self) -> int:
        return sum(self._open.values())

    @contextlib.contextmanager
    def hold(self, client: str) -> Iterator[None]:
        """A slot for one watch of `client` while the block runs; 429 when the client or server is full."""
        if self._open[client] >= self.per_client or self.open_watches >= self.total:
            raise too_many_requests()
        self._open[client] += 1
        try:
            yield
        finally:
            self._open[client] -= 1
            if not self._open[client]:
                del self._open[client]
