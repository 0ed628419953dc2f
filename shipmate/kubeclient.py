"""Async Kubernetes API client (aiohttp): CRUD, watch, and the informer's source over HTTP.

Built from a kubeconfig or `--server URL[,URL...]` (failover between several servers). Errors come
back as typed exceptions carrying the API's `Status` object so callers can branch on NotFound /
Conflict / AlreadyExists / Gone.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator
from urllib.parse import urlencode

import aiohttp
import yaml

from shipmate.informer import Expired

log = logging.getLogger(__name__)

Obj = dict[str, Any]
# Errors after which the same request goes to the next server (connection refused/reset, TLS
# failures, a server that stopped answering, a response or stream cut short).
FAILOVER_ERRORS = (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, asyncio.TimeoutError)
CREDENTIALS_CHECK_PERIOD = 5.0     # seconds between looks at the credential files' stamps
RETIRED_SESSION_GRACE = 30.0       # old connections live this long after a credentials reload


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------
class ApiError(Exception):
    """An error answer from the API server; `status` is the decoded `Status` object."""

    def __init__(self, code: int, status: Obj):
        self.code = code
        self.status = status
        self.reason = str(status.get("reason", ""))
        self.message = str(status.get("message", ""))
        super().__init__(f"{code} {self.reason}: {self.message}")


class BadRequest(ApiError): pass
class Unauthorized(ApiError): pass
class Forbidden(ApiError): pass
class NotFound(ApiError): pass
class Conflict(ApiError): pass
class AlreadyExists(Conflict): pass
class Gone(ApiError): pass
class Invalid(ApiError): pass
class TooManyRequests(ApiError): pass
class ServerError(ApiError): pass


def error_for(code: int, status: Obj) -> ApiError:
    """Maps an HTTP code and its Status body to the most specific exception type."""
    reason = status.get("reason")
    if code == 409:
        return (AlreadyExists if reason == "AlreadyExists" else Conflict)(code, status)
    kind: type[ApiError] = {
        400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 410: Gone,
        422: Invalid, 429: TooManyRequests,
    }.get(code, ServerError if code >= 500 else ApiError)
    return kind(code, status)


# ---------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------
@dataclass
class KubeConfig:
    """The connection part of a kubeconfig's current context."""
    server: str
    certificate_authority: str | None = None       # path
    certificate_authority_data: bytes | None = None
    client_certificate: str | None = None
    client_certificate_data: bytes | None = None
    client_key: str | None = None
    client_key_data: bytes | None = None
    token: str | None = None
    token_file: str | None = None                  # re-read when it changes (projected tokens rotate)
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"
    extra_servers: tuple[str, ...] = ()            # failover targets, tried in order after `server`

    @property
    def servers(self) -> tuple[str, ...]:
        return (self.server, *self.extra_servers)

    def ssl_context(self) -> ssl.SSLContext | None:
        if not any(server.startswith("https://") for server in self.servers):
            return None
        context = ssl.create_default_context(
            cafile=self.certificate_authority,
            cadata=self.certificate_authority_data.decode() if self.certificate_authority_data else None)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self.load_client_certificate(context)
        return context

    def load_client_certificate(self, context: ssl.SSLContext) -> None:
        """Adds the client certificate (file or -data) to `context`, when there is one."""
        if not (self.client_certificate or self.client_certificate_data):
            return
        with tempfile.TemporaryDirectory(prefix="shipmate-kube-") as scratch:
            # ssl reads certificates only from files: inline data goes through a private scratch file
            # that is gone once loaded.
            cert = _scratch_file(scratch, "cert.pem", self.client_certificate_data) or self.client_certificate
            key = _scratch_file(scratch, "key.pem", self.client_key_data) or self.client_key
            context.load_cert_chain(cert, key)

    def credential_files(self) -> tuple[str, ...]:
        """The files the TLS credentials are read from (watched for changes by KubeClient)."""
        return tuple(dict.fromkeys(path for path in (self.certificate_authority, self.client_certificate,
                                                     self.client_key, self.token_file) if path))

    def bearer_token(self) -> str | None:
        if self.token_file:
            with open(self.token_file) as handle:
                return handle.read().strip() or None
        return self.token


def _scratch_file(directory: str, name: str, data: bytes | None) -> str | None:
    if data is None:
        return None
    path = os.path.join(directory, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
        out.write(data)
    return path


def parse_servers(value: str) -> tuple[str, ...]:
    """`--server URL[,URL...]`: each an http(s) URL, trailing slash dropped; ValueError otherwise."""
    servers = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    if not servers:
        raise ValueError("no API server URL given")
    for server in servers:
        if not server.startswith(("https://", "http://")) or len(server) <= len("https://"):
            raise ValueError(f"API server URL {server!r} must start with https:// (or http://)")
    return servers


def parse_kubeconfig(document: Obj, base_dir: str = ".", context: str | None = None) -> KubeConfig:
    """Resolves the (current or named) context of a kubeconfig document into a KubeConfig."""
    def named(section: str, name: str) -> Obj:
        for entry in document.get(section) or []:
            if entry.get("name") == name:
                return entry.get(section[:-1]) or {}
        raise ValueError(f"kubeconfig: {section[:-1]} {name!r} not found")

    context_name = context or document.get("current-context")
    if not context_name:
        raise ValueError("kubeconfig: no current-context")
    ctx = named("contexts", context_name)
    cluster = named("clusters", ctx.get("cluster", ""))
    user = named("users", ctx["user"]) if ctx.get("user") else {}
    if not cluster.get("server"):
        raise ValueError(f"kubeconfig: cluster of context {context_name!r} has no server")

    def path(value: str | None) -> str | None:
        return os.path.join(base_dir, value) if value else None

    def data(value: str | None) -> bytes | None:
        return base64.b64decode(value) if value else None

    token = user.get("token")
    if not token and user.get("tokenFile"):
        with open(path(user["tokenFile"]) or "") as handle:
            token = handle.read().strip()
    return KubeConfig(
        server=cluster["server"].rstrip("/"),
        certificate_authority=path(cluster.get("certificate-authority")),
        certificate_authority_data=data(cluster.get("certificate-authority-data")),
        insecure_skip_tls_verify=bool(cluster.get("insecure-skip-tls-verify", False)),
        client_certificate=path(user.get("client-certificate")),
        client_certificate_data=data(user.get("client-certificate-data")),
        client_key=path(user.get("client-key")),
        client_key_data=data(user.get("client-key-data")),
        token=token,
        namespace=ctx.get("namespace") or "default",
    )


SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def in_cluster_config(environ: dict[str, str] | None = None, account_dir: str = SERVICE_ACCOUNT_DIR) -> KubeConfig:
    """client-go's rest.InClusterConfig: the API at $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT,
    the pod's service account token (re-read as the kubelet rotates it) and the cluster CA."""
    env = os.environ if environ is None else environ
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise ValueError("not in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be set")
    host = f"[{host}]" if ":" in host else host
    namespace = "default"
    try:
        with open(os.path.join(account_dir, "namespace")) as handle:
            namespace = handle.read().strip() or namespace
    except FileNotFoundError:
        pass
    return KubeConfig(server=f"https://{host}:{port}", certificate_authority=os.path.join(account_dir, "ca.crt"),
                      token_file=os.path.join(account_dir, "token"), namespace=namespace)


def load_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    with open(path) as handle:
        document = yaml.safe_load(handle) or {}
    return parse_kubeconfig(document, os.path.dirname(os.path.abspath(path)), context)


def config_from_flags(server: str | None, kubeconfig: str | None) -> KubeConfig:
    """`--kubeconfig` gives credentials; `--server URL[,URL...]`, when given, overrides its server
    (the first URL; the others are failover targets)."""
    if kubeconfig and os.path.exists(kubeconfig):
        config = load_kubeconfig(kubeconfig)
        return use_servers(config, server) if server else config
    if kubeconfig and not server:
        raise FileNotFoundError(f"kubeconfig {kubeconfig} does not exist and no --server given")
    if not server:
        raise ValueError("either --server or --kubeconfig is required")
    return use_servers(KubeConfig(server=""), server)


def use_servers(config: KubeConfig, servers: str) -> KubeConfig:
    """Points `config` at `URL[,URL...]`: the first URL, then the failover targets."""
    config.server, *extra = parse_servers(servers)
    config.extra_servers = tuple(extra)
    return config


# ---------------------------------------------------------------------------------------------
# Resources
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Resource:
    api_version: str              # "v1" or "group/version"
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        root = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


PODS = Resource("v1", "pods")
NODES = Resource("v1", "nodes", namespaced=False)
NAMESPACES = Resource("v1", "namespaces", namespaced=False)
EVENTS = Resource("v1", "events")
LEASES = Resource("coordination.k8s.io/v1", "leases")
SERVICES = Resource("v1", "services")
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "endpointslices")
NETWORK_POLICIES = Resource("networking.k8s.io/v1", "networkpolicies")
CONFIG_MAPS = Resource("v1", "configmaps")
SECRETS = Resource("v1", "secrets")

PATCH_CONTENT_TYPES = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


@dataclass
class WatchEvent:
    type: str                     # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Obj


# ---------------------------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------------------------
class KubeClient:
    """One API client over one or more servers: requests go to the current server and move to the
    next one (and stay there) on connection or TLS errors, on a 5xx from a failing server, and when
    a watch stream breaks. Client certificates are reloaded when their files change."""

    def __init__(self, config: KubeConfig, timeout: float = 30.0, user_agent: str = "shipmate"):
        self.config = config
        self.timeout = timeout
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        self._set_token(config.bearer_token())
        self._servers = config.servers
        self._current = 0
        self._ssl = config.ssl_context()
        self._credentials_stamp = _files_stamp(config.credential_files())
        self._credentials_checked = time.monotonic()
        self._session: aiohttp.ClientSession | None = None
        self._retired: set[aiohttp.ClientSession] = set()
        self._streams: dict[aiohttp.ClientSession, set[aiohttp.ClientResponse]] = {}   # open watches

    @property
    def server(self) -> str:
        """The server requests go to now."""
        return self._servers[self._current]

    async def __aenter__(self) -> "KubeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        sessions = [*self._retired, *([self._session] if self._session is not None else [])]
        self._session, self._retired, self._streams = None, set(), {}
        for session in sessions:
            await session.close()

    # -- credentials ------------------------------------------------------------------------------
    def reload_credentials(self) -> None:
        """Rebuilds the TLS context from the config's files; new requests use it at once, the old
        connections (watches included) are closed after a grace period and reconnect with it."""
        self._ssl = self.config.ssl_context()
        self._set_token(self.config.bearer_token())
        self._credentials_stamp = _files_stamp(self.config.credential_files())
        old, self._session = self._session, None
        if old is not None:
            self._retired.add(old)
            asyncio.get_running_loop().call_later(RETIRED_SESSION_GRACE, self._close_retired, old)
        log.info("client credentials reloaded files=%s", ",".join(self.config.credential_files()))

    def _set_token(self, token: str | None) -> None:
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        else:
            self._headers.pop("Authorization", None)

    def _close_retired(self, session: aiohttp.ClientSession) -> None:
        if session not in self._retired:
            return
        self._retired.discard(session)
        # A watch waiting for data is not woken by its connection closing: end each stream itself.
        for response in self._streams.pop(session, set()):
            response.content.set_exception(aiohttp.ClientConnectionError("closed after a credentials reload"))
            response.close()
        task = asyncio.ensure_future(session.close())
        task.add_done_callback(_ignore_result)

    def _reload_changed_credentials(self) -> None:
        now = time.monotonic()
        if now - self._credentials_checked < CREDENTIALS_CHECK_PERIOD:
            return
        self._credentials_checked = now
        if _files_stamp(self.config.credential_files()) == self._credentials_stamp:
            return
        try:
            self.reload_credentials()
        except (OSError, ssl.SSLError, ValueError) as error:
            log.warning("changed client credentials do not load, keeping the old ones error=%r", error)

    def _client(self) -> aiohttp.ClientSession:
        self._reload_changed_credentials()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=64)
            self._session = aiohttp.ClientSession(base_url=None, connector=connector, headers=self._headers)
        return self._session

    # -- failover ---------------------------------------------------------------------------------
    def _failover_order(self) -> list[str]:
        return [*self._servers[self._current:], *self._servers[:self._current]]

    def _server_failed(self, server: str, error: object) -> None:
        """Moves on to the next server, unless another request already did."""
        if len(self._servers) > 1 and self.server == server:
            self._current = (self._current + 1) % len(self._servers)
            log.warning("API server failing, switching failed=%s next=%s error=%r", server, self.server, error)

    async def _open(self, method: str, path: str, timeout: aiohttp.ClientTimeout, data: str | None = None,
                    headers: dict[str, str] | None = None
                    ) -> tuple[str, aiohttp.ClientSession, aiohttp.ClientResponse]:
        """Sends the request to the current server, failing over to the others in turn; returns the
        server that answered, the session used and its response (the caller releases it)."""
        order = self._failover_order()
        for attempt, server in enumerate(order):
            last = attempt == len(order) - 1
            session = self._client()
            try:
                response = await session.request(method, server + path, data=data, headers=headers,
                                                 timeout=timeout)
            except FAILOVER_ERRORS as error:
                self._server_failed(server, error)
                if last:
                    raise
                continue
            if _server_failing(response.status) and not last:
                response.release()
                self._server_failed(server, f"HTTP {response.status}")
                continue
            return server, session, response
        raise AssertionError("unreachable: the last server's answer or error is returned")

    @staticmethod
    def _path(path: str, query: dict[str, Any] | None = None) -> str:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        return path + ("?" + urlencode(query) if query else "")

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        _server, _session, response = await self._open(method, self._path(path, query),
                                                       aiohttp.ClientTimeout(total=self.timeout), data, headers)
        async with response:
            text = await response.text()
            return _decode(response.status, text)

    async def get_raw(self, path: str) -> bytes:
        """A GET of a non-JSON document (e.g. /cacerts); error answers raise as in `request`."""
        _server, _session, response = await self._open("GET", path, aiohttp.ClientTimeout(total=self.timeout))
        async with response:
            body = await response.read()
            if not 200 <= response.status < 300:
                _decode(response.status, body.decode(errors="replace"))
            return body

    # -- verbs --------------------------------------------------------------------------------
    async def get(self, resource: Resource, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> Obj:
        return await self.request("GET", resource.path(namespace, name, subresource))

    async def list(self, resource: Resource, namespace: str | None = None, *,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None) -> Obj:
        return await self.request("GET", resource.path(namespace), query={
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "resourceVersion": resource_version})

    async def create(self, resource: Resource, body: Obj, namespace: str | None = None,
                     name: str | None = None, subresource: str | None = None) -> Obj:
        namespace = namespace or body.get("metadata", {}).get("namespace")
        return await self.request("POST", resource.path(namespace, name, subresource), body=body)

    async def update(self, resource: Resource, body: Obj, namespace: str | None = None,
                     subresource: str | None = None) -> Obj:
        meta = body.get("metadata", {})
        namespace = namespace or meta.get("namespace")
        return await self.request("PUT", resource.path(namespace, meta["name"], subresource), body=body)

    async def patch(self, resource: Resource, name: str, patch: Any, namespace: str | None = None,
                    subresource: str | None = None, patch_type: str = "merge") -> Obj:
        return await self.request("PATCH", resource.path(namespace, name, subresource), body=patch,
                                  content_type=PATCH_CONTENT_TYPES[patch_type])

    async def delete(self, resource: Resource, name: str, namespace: str | None = None, *,
                     grace_period_seconds: int | None = None, uid: str | None = None,
                     resource_version: str | None = None,
                     propagation_policy: str | None = None) -> Obj:
        options: Obj = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            options["preconditions"] = preconditions
        if propagation_policy:
            options["propagationPolicy"] = propagation_policy
        return await self.request("DELETE", resource.path(namespace, name), body=options)

    async def watch(self, resource: Resource, namespace: str | None = None, *,
                    resource_version: str | None = None, label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """One watch stream. Raises Gone when the resourceVersion is too old (HTTP 410 or an
        ERROR event with code 410); other ERROR events raise the matching ApiError."""
        query = {"watch": "1", "resourceVersion": resource_version, "labelSelector": label_selector,
                 "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                 "allowWatchBookmarks": "true" if allow_bookmarks else None}
        # A server that vanishes without closing the connection must not hang the watch forever.
        read_limit = timeout_seconds + self.timeout if timeout_seconds else None
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=read_limit)
        server, session, response = await self._open("GET", self._path(resource.path(namespace), query), timeout)
        streams = self._streams.setdefault(session, set())
        streams.add(response)
        try:
            async with response:
                if response.status != 200:
                    _decode(response.status, await response.text())
                buffer = b""
                try:
                    async for chunk in response.content.iter_any():
                        buffer += chunk
                        while b"\n" in buffer:
                            line, buffer = buffer.split(b"\n", 1)
                            if line.strip():
                                yield _watch_event(json.loads(line))
                except FAILOVER_ERRORS as error:
                    # The stream broke (not a clean end): the next watch goes to the next server,
                    # unless it was ours to close (a session retired by a credentials reload).
                    if session is self._session:
                        self._server_failed(server, error)
                    raise
                if buffer.strip():
                    yield _watch_event(json.loads(buffer))
        finally:
            streams.discard(response)


def _server_failing(status: int) -> bool:
    """A 5xx another server may not give (501 Not Implemented would be the same everywhere)."""
    return status >= 500 and status != 501


def _files_stamp(paths: tuple[str, ...]) -> tuple[tuple[int, int, int] | None, ...]:
    def stamp(path: str) -> tuple[int, int, int] | None:
        try:
            info = os.stat(path)
        except OSError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns
    return tuple(stamp(path) for path in paths)


def _ignore_result(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


def _decode(code: int, text: str) -> Obj:
    try:
        body = json.loads(text) if text else {}
    except ValueError:
        body = {"kind": "Status", "message": text.strip(), "code": code}
    if 200 <= code < 300:
        return body
    if not isinstance(body, dict) or body.get("kind") != "Status":
        body = {"kind": "Status", "message": text.strip(), "code": code}
    raise error_for(code, body)


def _watch_event(raw: Obj) -> WatchEvent:
    if raw.get("type") == "ERROR":
        status = raw.get("object") or {}
        raise error_for(int(status.get("code") or 500), status)
    return WatchEvent(type=raw["type"], object=raw.get("object") or {})


# ---------------------------------------------------------------------------------------------
# The informer's source
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ResourceSource:
    """One resource listed and watched over the API: what the agent's informers (shipmate.informer) read.
    A watch stops after `watch_timeout_seconds` (the informer resumes it), so a server that went away
    without closing the stream is noticed."""
    client: KubeClient
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    watch_timeout_seconds: int = 300

    @property
    def name(self) -> str:
        return self.resource.plural

    async def list(self) -> tuple[list[Obj], str]:
        listing = await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                         field_selector=self.field_selector)
        return listing.get("items") or [], str((listing.get("metadata") or {}).get("resourceVersion") or "")

    async def watch(self, resource_version: str) -> AsyncIterator[WatchEvent]:
        try:
            async for event in self.client.watch(
                    self.resource, self.namespace, resource_version=resource_version or None,
                    label_selector=self.label_selector, field_selector=self.field_selector,
                    timeout_seconds=self.watch_timeout_seconds):
                yield event
        except Gone as gone:
            raise Expired(str(gone)) from gone
