"""Async Kubernetes API client (aiohttp): CRUD, watch with resume, and an informer.

Built from a kubeconfig or a bare `--server` URL. Errors come back as typed exceptions carrying the
API's `Status` object so callers can branch on NotFound / Conflict / AlreadyExists / Gone.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlencode

import aiohttp
import yaml

log = logging.getLogger(__name__)

Obj = dict[str, Any]


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
    insecure_skip_tls_verify: bool = False
    namespace: str = "default"

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.server.startswith("https://"):
            return None
        context = ssl.create_default_context(
            cafile=self.certificate_authority,
            cadata=self.certificate_authority_data.decode() if self.certificate_authority_data else None)
        if self.insecure_skip_tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        cert, key = self._client_key_pair()
        if cert:
            context.load_cert_chain(cert, key)
        return context

    def _client_key_pair(self) -> tuple[str | None, str | None]:
        cert, key = self.client_certificate, self.client_key
        if self.client_certificate_data:
            cert = _private_temp_file(self.client_certificate_data)
        if self.client_key_data:
            key = _private_temp_file(self.client_key_data)
        return cert, key


def _private_temp_file(data: bytes) -> str:
    # ssl.load_cert_chain only reads files; the file stays for the process lifetime (mode 0600).
    handle, path = tempfile.mkstemp(prefix="shipmate-kube-")
    with os.fdopen(handle, "wb") as out:
        out.write(data)
    return path


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


def load_kubeconfig(path: str, context: str | None = None) -> KubeConfig:
    with open(path) as handle:
        document = yaml.safe_load(handle) or {}
    return parse_kubeconfig(document, os.path.dirname(os.path.abspath(path)), context)


def config_from_flags(server: str | None, kubeconfig: str | None) -> KubeConfig:
    """`--kubeconfig` gives credentials; `--server`, when given, overrides its server URL."""
    if kubeconfig and os.path.exists(kubeconfig):
        config = load_kubeconfig(kubeconfig)
        if server:
            config.server = server.rstrip("/")
        return config
    if kubeconfig and not server:
        raise FileNotFoundError(f"kubeconfig {kubeconfig} does not exist and no --server given")
    if not server:
        raise ValueError("either --server or --kubeconfig is required")
    return KubeConfig(server=server.rstrip("/"))


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
    def __init__(self, config: KubeConfig, timeout: float = 30.0, user_agent: str = "shipmate"):
        self.config = config
        self.timeout = timeout
        self._headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if config.token:
            self._headers["Authorization"] = f"Bearer {config.token}"
        self._ssl = config.ssl_context()
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "KubeClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._ssl if self._ssl is not None else False, limit=64)
            self._session = aiohttp.ClientSession(base_url=None, connector=connector, headers=self._headers)
        return self._session

    def _url(self, path: str, query: dict[str, Any] | None = None) -> str:
        query = {k: v for k, v in (query or {}).items() if v is not None}
        return self.config.server + path + ("?" + urlencode(query) if query else "")

    async def request(self, method: str, path: str, *, query: dict[str, Any] | None = None,
                      body: Any = None, content_type: str = "application/json") -> Obj:
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if body is not None else {}
        async with self._client().request(method, self._url(path, query), data=data, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=self.timeout)) as response:
            text = await response.text()
            return _decode(response.status, text)

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
        async with self._client().get(self._url(resource.path(namespace), query), timeout=timeout) as response:
            if response.status != 200:
                _decode(response.status, await response.text())
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield _watch_event(json.loads(line))
            if buffer.strip():
                yield _watch_event(json.loads(buffer))


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
# Informer
# ---------------------------------------------------------------------------------------------
def object_key(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta.get("name", "")


ChangeHandler = Callable[[str, Obj | None, Obj | None], Awaitable[None] | None]


@dataclass
class Informer:
    """list+watch into a local store; calls `on_change(type, old, new)` for every change.

    Relists on 410 Gone (emitting the differences), resumes from the last resourceVersion (bookmarks
    included), and reconnects with exponential backoff on any other failure.
    """
    client: KubeClient
    resource: Resource
    namespace: str | None = None
    field_selector: str | None = None
    label_selector: str | None = None
    on_change: ChangeHandler | None = None
    min_backoff: float = 0.2
    max_backoff: float = 10.0
    watch_timeout_seconds: int = 300
    store: dict[str, Obj] = field(default_factory=dict)
    resource_version: str | None = None
    synced: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        backoff = self.min_backoff
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                await self._watch_once()
                backoff = self.min_backoff
            except Gone:
                log.info("watch expired, relisting resource=%s rv=%s", self.resource.plural,
                         self.resource_version)
                need_list = True
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the informer must survive anything
                log.warning("list/watch failed resource=%s error=%r retry_in=%.1fs",
                            self.resource.plural, error, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def _relist(self) -> None:
        listing = await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                         field_selector=self.field_selector)
        fresh = {object_key(item): item for item in listing.get("items", [])}
        self.resource_version = listing.get("metadata", {}).get("resourceVersion")
        old_store, self.store = self.store, fresh
        for key, obj in fresh.items():
            previous = old_store.get(key)
            if previous is None:
                await self._notify("ADDED", None, obj)
            elif _rv(previous) != _rv(obj):
                await self._notify("MODIFIED", previous, obj)
        for key, previous in old_store.items():
            if key not in fresh:
                await self._notify("DELETED", previous, None)
        self.synced.set()

    async def _watch_once(self) -> None:
        async for event in self.client.watch(
                self.resource, self.namespace, resource_version=self.resource_version,
                label_selector=self.label_selector, field_selector=self.field_selector,
                timeout_seconds=self.watch_timeout_seconds):
            obj = event.object
            rv = _rv(obj)
            if event.type == "BOOKMARK":
                self.resource_version = rv or self.resource_version
                continue
            key = object_key(obj)
            previous = self.store.get(key)
            if event.type == "DELETED":
                self.store.pop(key, None)
                await self._notify("DELETED", previous, obj)
            else:
                self.store[key] = obj
                await self._notify("ADDED" if previous is None else "MODIFIED", previous, obj)
            self.resource_version = rv or self.resource_version

    async def _notify(self, kind: str, old: Obj | None, new: Obj | None) -> None:
        if self.on_change is None:
            return
        try:
            result = self.on_change(kind, old, new)
            if asyncio.iscoroutine(result):
                await result
        except Exception:  # noqa: BLE001 - a handler bug must not stop the informer
            log.exception("informer handler failed resource=%s", self.resource.plural)


def _rv(obj: Obj) -> str | None:
    return obj.get("metadata", {}).get("resourceVersion")
