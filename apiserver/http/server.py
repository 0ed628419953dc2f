"""HTTP layer: routing, content negotiation, encoding of objects, lists, tables, watch streams, errors."""
from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from apiserver import errors, eviction, request_warnings
from apiserver.api import API
from apiserver.auth import middleware as auth_middleware
from apiserver.http import body as request_body, discovery, openapi, paging
from apiserver.http.limits import InflightLimiter, WatchLimiter, client_key, read_body
from apiserver.http.metrics import ServerMetrics
from apiserver.http.metrics_api import MetricsRoutes
from apiserver.http.pod_proxy import PodProxy
from apiserver.http.oidc import OIDCRoutes
from apiserver.http.review_routes import ReviewRoutes
from apiserver.requestinfo import RequestInfo, parse_resource_path
from apiserver.kinds import scale
from apiserver.deletion_propagation import parse_policy
from apiserver.patch import APPLY_PATCH, JSON_PATCH
from apiserver.apply import context as field_managers
from apiserver.apply.request import apply_config, request_writer
from apiserver.read_cache import CachedObject
from apiserver.registry import DeleteOptions, Registry, expired_status, utc_now
from apiserver.storage.interface import RevisionCompacted, WatchClosed
from apiserver.tables import partial_object_metadata, render_table
from shipmate import jsoncodec
from shipmate.timeutil import rfc3339
from shipmate.selectors import SelectorError, parse_field_selector, parse_label_selector

log = logging.getLogger(__name__)

JSON = "application/json"
BOOKMARK_INTERVAL = 30.0
_MIN_REQUEST_TIMEOUT = 1800


def json_response(body: Any, status: int = 200, content_type: str = JSON,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=jsoncodec.dumps(body), status=status,
                        headers={"Content-Type": content_type, **(headers or {})})


def error_response(exc: errors.APIError) -> web.Response:
    """A Status, encoded as upstream's (Go's json.Encoder ends it with a newline)."""
    return web.Response(body=jsoncodec.dumps_line(exc.status()), status=exc.code,
                        headers={"Content-Type": JSON, **exc.headers})


@dataclass(frozen=True)
class Rendering:
    """How the client wants objects: plain JSON, a meta.k8s.io Table, or PartialObjectMetadata."""
    as_kind: str = ""  # "", "Table" or "PartialObjectMetadata"
    version: str = "v1"


def negotiate(accept: str) -> Rendering:
    """The first media type in Accept that we serve (all are JSON-encoded)."""
    for media in accept.split(","):
        params = dict(p.strip().split("=", 1) for p in media.split(";")[1:] if "=" in p)
        as_kind = params.get("as", "")
        if not as_kind:
            if media.split(";")[0].strip() in (JSON, "*/*", "application/vnd.kubernetes.protobuf", ""):
                return Rendering()
            continue
        if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            if as_kind == "Table":
                return Rendering("Table", params["v"])
            if as_kind in ("PartialObjectMetadata", "PartialObjectMetadataList"):
                return Rendering("PartialObjectMetadata", params["v"])
    return Rendering()


def warning_header(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'299 - "{escaped}"'


def with_warnings(headers: dict[str, str], texts: list[str]) -> dict[str, str]:
    """`headers` with these warnings appended to its Warning header (one header, comma-separated values)."""
    existing = headers.get("Warning")
    added = ", ".join(warning_header(text) for text in texts)
    return {**headers, "Warning": f"{existing}, {added}" if existing else added}


def _bool(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _optional_bool(value: str | None) -> bool | None:
    return None if value is None else _bool(value)


def _list_of(registry: Registry, list_meta: dict[str, Any], items: list[Any]) -> dict[str, Any]:
    """A kind's List: upstream's envelope around `items`."""
    return {"kind": f"{registry.info.kind}List", "apiVersion": registry.info.api_version, "metadata": list_meta,
            "items": items}


class HTTPServer:
    def __init__(self, api: API, server_address: str = "127.0.0.1:6443", token_auth_file: str = "",
                 inflight: InflightLimiter | None = None):
        self.api = api
        self.server_address = server_address
        self.app = web.Application(client_max_size=8 * 1024 * 1024, middlewares=[self._errors])
        self._watches: set = set()
        self.watch_limits = WatchLimiter()
        # kube-apiserver answers these with and without a trailing slash (clients ask for both: kr8s asks /version/)
        for path in ("/version", "/version/"):
            self.app.router.add_get(path, self.version)
        for path in ("/healthz", "/livez", "/readyz"):
            self.app.router.add_get(path, self.health)
        self.app.router.add_get("/cacerts", self.ca_certs)
        for path in ("/api", "/api/"):
            self.app.router.add_get(path, self.core_versions)
        for path in ("/apis", "/apis/"):
            self.app.router.add_get(path, self.groups)
        self.app.router.add_get("/openapi/v2", self.openapi_v2)
        self.app.router.add_get("/openapi/v3", self.openapi_root)
        self.app.router.add_get("/openapi/v3/{path:.*}", self.openapi_group_version)
        PodProxy(api).add_routes(self.app)   # pods/log, pods/exec, pods/attach → the node server
        ReviewRoutes(api).add_routes(self.app)  # access/rules/identity/token reviews (create-only, not stored)
        OIDCRoutes(api).add_routes(self.app)    # service account issuer discovery
        MetricsRoutes(api).add_routes(self.app)  # metrics.k8s.io/v1beta1 from the nodes' resource metrics
        ServerMetrics(api).install(self.app)  # /metrics + the request-metrics middleware
        auth_middleware.install(self.app, api, token_auth_file)  # 401/403 inside _errors; sets api.authorizer
        self.inflight = inflight or InflightLimiter()
        self.app.middlewares.append(self.inflight.middleware)  # 429 past --max-*-requests-inflight (after auth)
        self.app.router.add_route("*", "/api/{tail:.*}", self.resource)
        self.app.router.add_route("*", "/apis/{tail:.*}", self.resource)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except errors.APIError as exc:
            return error_response(exc)
        except web.HTTPException as exc:
            if exc.status == 404:
                return error_response(errors.APIError(404, "NotFound", "the server could not find the requested "
                                                      "resource", {}))
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a Status, and is logged
            log.exception("request failed method=%s path=%s", request.method, request.path)
            return error_response(errors.internal_error(str(exc)))

    def close_watches(self) -> None:
        """End every open watch stream cleanly (clients resume elsewhere or after restart)."""
        for resource_watch in list(self._watches):
            resource_watch.stop()

    # non-resource endpoints ------------------------------------------------------------------
    async def version(self, request: web.Request) -> web.Response:
        return json_response(discovery.version_info())

    async def health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def ca_certs(self, request: web.Request) -> web.Response:
        """The cluster CA bundle (PEM), unauthenticated: joining agents pin it with --ca-cert-hash."""
        if self.api.pki is None:
            raise errors.APIError(404, "NotFound", "this server has no cluster CA")
        return web.Response(body=self.api.pki.ca_cert_pem, content_type="application/x-pem-file")

    def _aggregated(self, request: web.Request, legacy: bool) -> web.Response | None:
        accept = request.headers.get("Accept", "")
        for media, version in ((discovery.AGGREGATED_V2, "v2"), (discovery.AGGREGATED_V2BETA1, "v2beta1")):
            wanted = media.replace(";", "").replace(" ", "")
            if any(part.replace(";", "").replace(" ", "") == wanted for part in accept.split(",")):
                body = discovery.aggregated_discovery(self.api.resources(), legacy, f"apidiscovery.k8s.io/{version}")
                return json_response(body, content_type=media)
        return None

    async def core_versions(self, request: web.Request) -> web.Response:
        return self._aggregated(request, True) or json_response(discovery.api_versions(self.server_address))

    async def groups(self, request: web.Request) -> web.Response:
        await self.api.custom_resources.refresh()  # custom resources appear without a restart
        return self._aggregated(request, False) or json_response(discovery.api_group_list(self.api.resources()))

    async def openapi_v2(self, request: web.Request) -> web.Response:
        """Swagger 2.0 as JSON for clients that ask for JSON (code generators); kubectl asks for protobuf and gets
        a document without definitions: it then computes apply patches from OpenAPI v3 (or its built-in types),
        and leaves field validation to the server."""
        accept = request.headers.get("Accept", "")
        if "protobuf" not in accept and ("json" in accept or not accept):
            await self.api.custom_resources.refresh()
            custom = self.api.custom_resources
            return json_response(openapi.v2_json_document(
                self.api.resources(), custom.openapi, lambda g, v: custom.openapi(g, v, v2=True)))
        return web.Response(body=openapi.v2_document(), content_type="application/octet-stream")

    async def openapi_root(self, request: web.Request) -> web.Response:
        await self.api.custom_resources.refresh()
        return json_response(openapi.root_document(self.api.resources(), self.api.custom_resources.openapi))

    async def openapi_group_version(self, request: web.Request) -> web.Response:
        await self.api.custom_resources.refresh()
        parts = request.match_info["path"].strip("/").split("/")
        if parts[0] == "api" and len(parts) == 2:
            document = openapi.group_version_document(self.api.resources(), "", parts[1])
        elif parts[0] == "apis" and len(parts) == 3:
            document = openapi.group_version_document(self.api.resources(), parts[1], parts[2],
                                                      self.api.custom_resources.openapi(parts[1], parts[2]))
        else:
            document = None
        if document is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        return json_response(document)

    # resources -------------------------------------------------------------------------------
    def _discovery_document(self, request: web.Request) -> dict[str, Any] | None:
        parts = [p for p in request.path.split("/") if p]
        resources = self.api.resources()
        if parts[0] == "api" and len(parts) == 2:
            return discovery.api_resource_list(resources, "", parts[1])
        if parts[0] == "apis" and len(parts) == 2:
            return discovery.api_group(resources, parts[1])
        if parts[0] == "apis" and len(parts) == 3:
            return discovery.api_resource_list(resources, parts[1], parts[2])
        return None

    def _lookup(self, info: RequestInfo) -> Registry:
        registry = self.api.served_registry(info.group, info.version, info.resource)
        if registry is None:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        if info.subresource and info.subresource not in registry.info.subresources:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        if info.namespace and not registry.info.namespaced:
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        return registry

    async def resource(self, request: web.Request) -> web.StreamResponse:
        await self.api.custom_resources.refresh()  # this server's CRD writes are served at once
        info = parse_resource_path(request.path)
        if info is None:
            document = self._discovery_document(request) if request.method == "GET" else None
            if document is None:
                raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
            return json_response(document)
        registry = self._lookup(info)
        collected = request_warnings.begin()  # warnings added below the HTTP layer (admission)
        try:
            response = await self._serve_resource(request, registry, info)
        except errors.APIError as exc:
            if collected:
                exc.headers = with_warnings(exc.headers, collected)
            raise
        texts = ([registry.info.deprecation] if registry.info.deprecation else []) + collected
        if texts and not response.prepared:
            combined = with_warnings({"Warning": response.headers["Warning"]} if "Warning" in response.headers
                                     else {}, texts)
            response.headers["Warning"] = combined["Warning"]
        return response

    async def _serve_resource(self, request: web.Request, registry: Registry,
                              info: RequestInfo) -> web.StreamResponse:
        method = request.method
        if method in ("POST", "PUT", "PATCH", "DELETE"):  # who owns what this request writes (managedFields)
            field_managers.set_writer(request_writer(request.query, request.headers))
        if info.subresource == "scale":
            return await self._scale(request, registry, info)
        if method == "GET" and info.subresource not in ("", "status", "approval", "ephemeralcontainers", "resize"):
            raise errors.method_not_allowed(method, registry.info.plural)
        if method == "GET":
            if info.name:
                return await self._get(request, registry, info)
            if _bool(request.query.get("watch")):
                with self.watch_limits.hold(client_key(request)):  # 429 past the per-user/total caps
                    return await self._watch(request, registry, info)
            return await self._list(request, registry, info)
        if method == "POST" and not info.name:
            return await self._create(request, registry, info)
        if method == "POST" and info.subresource == "binding":
            body = await self._body(request)
            await self.api.bind(info.namespace, info.name, body, self._dry_run(request))
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                                  "code": 201}, 201)
        if method == "POST" and info.subresource == "token":  # TokenRequest: issued, not stored
            token = await self.api.create_token(info.namespace, info.name, await self._body(request),
                                                self._dry_run(request))
            return json_response(token, 201)
        if method == "POST" and info.subresource == "eviction":
            status = await eviction.evict(self.api, info.namespace, info.name, await self._body(request),
                                          self._dry_run(request))
            return json_response(status, 201)
        if method == "PUT" and info.name and info.subresource in ("", "status", "finalize", "approval",
                                                                  "ephemeralcontainers", "resize"):
            body = await self._body(request)
            warnings = self._check_fields(request, registry, body)
            obj, created = await self.api.update(registry, info.namespace, info.name, body, info.subresource,
                                                 self._dry_run(request))
            return self._object_response(request, registry, obj, 201 if created else 200, warnings)
        if method == "PATCH" and info.name and info.subresource in ("", "status", "approval", "ephemeralcontainers",
                                                                   "resize"):
            return await self._patch(request, registry, info)
        if method == "DELETE" and info.name and not info.subresource:
            return await self._delete(request, registry, info)
        if method == "DELETE" and not info.name:
            return await self._delete_collection(request, registry, info)
        raise errors.method_not_allowed(method, registry.info.plural)

    async def _scale(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        """autoscaling/v1 Scale of a workload: GET, PUT, PATCH (kubectl scale)."""
        if request.method == "GET":
            return json_response(await scale.get_scale(registry, info.namespace, info.name))
        body = await self._body(request)
        if request.method == "PUT":
            return json_response(await scale.update_scale(registry, info.namespace, info.name, body,
                                                          self._dry_run(request)))
        if request.method == "PATCH":
            content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
            accepted = [t for t in registry.strategy.patch_types() if t != APPLY_PATCH]
            if content_type not in accepted:
                raise errors.unsupported_media_type(accepted)
            return json_response(await scale.patch_scale(registry, info.namespace, info.name, content_type, body,
                                                         self._dry_run(request)))
        raise errors.method_not_allowed(request.method, registry.info.plural)

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        for value in values:
            if value != "All":
                raise errors.bad_request(f'unsupported dryRun value "{value}"')
        return bool(values)

    @staticmethod
    async def _body(request: web.Request) -> Any:
        raw = await read_body(request)  # 413 past 3 MiB, checked while reading
        if not raw:
            return None
        return await request_body.decode_async(raw, request.headers.get("Content-Type", JSON))

    @staticmethod
    def _check_fields(request: web.Request, registry: Registry, body: Any) -> list[str]:
        """Apply fieldValidation: Strict rejects unknown fields (400), Warn returns them as warnings."""
        mode = request.query.get("fieldValidation", "Warn")
        if mode not in ("Strict", "Warn", "Ignore"):
            raise errors.bad_request(f"fieldValidation must be one of Ignore, Warn, or Strict, got {mode!r}")
        if mode == "Ignore":
            return []
        unknown = registry.strategy.unknown_fields(body)
        if unknown and mode == "Strict":
            kind = registry.info.kind
            detail = ", ".join(f'unknown field "{f}"' for f in unknown)
            raise errors.bad_request(f'{kind} in version "{registry.info.version}" cannot be handled as a {kind}: '
                                     f'strict decoding error: {detail}')
        return [f'unknown field "{f}"' for f in unknown]

    def _object_response(self, request: web.Request, registry: Registry, obj: dict, status: int = 200,
                         warnings: list[str] = ()) -> web.Response:
        headers = {"Warning": ", ".join(warning_header(w) for w in warnings)} if warnings else None
        rendering = negotiate(request.headers.get("Accept", ""))
        if rendering.as_kind == "Table":
            spec = registry.strategy.table(utc_now())
            body = render_table(spec, [obj], request.query.get("includeObject", "Metadata"), rendering.version,
                                obj.get("metadata", {}).get("resourceVersion", ""))
            return json_response(body, status, headers=headers)
        if rendering.as_kind == "PartialObjectMetadata":
            return json_response(partial_object_metadata(obj, f"meta.k8s.io/{rendering.version}"), status,
                                 headers=headers)
        return json_response(obj, status, headers=headers)

    async def _get(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        cache = registry.read_cache()
        if cache is None or not cache.serves_gets:
            return self._object_response(request, registry, await registry.get(info.namespace, info.name))
        await cache.current()
        cached = cache.get(registry.key(info.namespace, info.name))
        if cached is None:
            raise errors.not_found(registry.info.group, registry.info.plural, info.name)
        if negotiate(request.headers.get("Accept", "")).as_kind:
            return self._object_response(request, registry, registry.decode(cached.kv))
        return web.Response(body=cached.json(registry), headers={"Content-Type": JSON})

    def _selectors(self, request: web.Request):
        try:
            return (parse_label_selector(request.query.get("labelSelector")),
                    parse_field_selector(request.query.get("fieldSelector")))
        except SelectorError as exc:
            raise errors.bad_request(f"unable to parse requirement: {exc}") from None

    async def _list(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        labels, fields = self._selectors(request)
        limit = paging.parse_limit(request.query)
        token = paging.decode_continue(request.query["continue"]) if request.query.get("continue") else None
        if token is not None:
            paging.check_expired(token, registry.storage.compacted_revision)  # 410 Expired past the history
        prefix_length = len(registry.prefix(info.namespace))
        cache = registry.read_cache()
        items: list[Any]
        if cache is None:
            items, revision = await registry.list(info.namespace, labels, fields)
        else:  # CachedObjects, rendered below
            registry.field_selector_check(fields)
            revision = await cache.current()
            items = cache.select(registry.prefix(info.namespace), labels, fields)

        def relative_key(item: Any) -> str:
            if cache is not None:
                return item.kv.key[prefix_length:]
            return registry.key(item["metadata"].get("namespace", ""), item["metadata"]["name"])[prefix_length:]
        list_meta: dict[str, Any] = {"resourceVersion": str(revision)}
        if limit or token is not None:
            keyed = [(relative_key(item), item) for item in items]
            if token is not None and token.revision != -1:
                revision = token.revision  # every page of a list reports the first page's resourceVersion
            chunk = paging.page(keyed, limit, token.start if token else "", revision)
            items = chunk.items
            list_meta = {"resourceVersion": str(revision)}
            if chunk.continue_token:
                list_meta["continue"] = chunk.continue_token
                if labels.empty() and fields.empty():
                    list_meta["remainingItemCount"] = chunk.remaining
        rendering = negotiate(request.headers.get("Accept", ""))
        if cache is not None:
            if not rendering.as_kind:
                return web.Response(body=self._list_json(registry, list_meta, items), headers={"Content-Type": JSON})
            items = [registry.decode(cached.kv) for cached in items]
        if rendering.as_kind == "Table":
            spec = registry.strategy.table(utc_now())
            table = render_table(spec, items, request.query.get("includeObject", "Metadata"), rendering.version,
                                 str(revision))
            table.setdefault("metadata", {}).update(list_meta)
            return json_response(table)
        if rendering.as_kind == "PartialObjectMetadata":
            api_version = f"meta.k8s.io/{rendering.version}"
            return json_response({"kind": "PartialObjectMetadataList", "apiVersion": api_version,
                                  "metadata": list_meta,
                                  "items": [partial_object_metadata(obj, api_version) for obj in items]})
        return json_response(_list_of(registry, list_meta, items))

    @staticmethod
    def _list_json(registry: Registry, list_meta: dict[str, Any], items: list[CachedObject]) -> bytes:
        """The List as json_response encodes it, its items' JSON joined as the cache holds them."""
        head = jsoncodec.dumps(_list_of(registry, list_meta, []))
        parts = [head[:-2]]  # up to and with the items' "[": one join copies every item once
        for cached in items:
            parts += (cached.json(registry), b",")
        if items:
            parts[-1] = b"]}"  # the last item's comma
        else:
            parts.append(b"]}")
        return b"".join(parts)

    async def _create(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        body = await self._body(request)
        warnings = self._check_fields(request, registry, body)
        namespace = info.namespace
        if registry.info.namespaced and not namespace:
            raise errors.method_not_allowed("POST", registry.info.plural)
        obj = await self.api.create(registry, namespace, body, self._dry_run(request))
        return self._object_response(request, registry, obj, 201, warnings)

    async def _patch(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip()
        accepted = registry.strategy.patch_types()
        if content_type not in accepted:
            raise errors.unsupported_media_type(list(accepted))
        body = await self._body(request)
        if content_type == APPLY_PATCH:
            return await self._apply(request, registry, info, body)
        # A merge or strategic patch has the object's shape, so its unknown fields are the result's.
        warnings = self._check_fields(request, registry, body) if content_type != JSON_PATCH else []
        obj = await self.api.patch(registry, info.namespace, info.name, content_type, body, info.subresource,
                                   self._dry_run(request))
        return self._object_response(request, registry, obj, warnings=warnings)

    async def _apply(self, request: web.Request, registry: Registry, info: RequestInfo, body: Any) -> web.Response:
        """Server-side apply: a patch of the live object, or a create when there is none."""
        warnings = self._check_fields(request, registry, body)
        try:
            obj = await self.api.patch(registry, info.namespace, info.name, APPLY_PATCH, body, info.subresource,
                                       self._dry_run(request))
            return self._object_response(request, registry, obj, warnings=warnings)
        except errors.APIError as exc:
            if exc.code != 404 or info.subresource:
                raise
        created = apply_config(None, body, registry.info.group, registry.info.plural, info.name,
                               rfc3339(utc_now()), registry.strategy.field_layout())
        created.setdefault("metadata", {})["name"] = info.name
        obj = await self.api.create(registry, info.namespace, created, self._dry_run(request))
        return self._object_response(request, registry, obj, 201, warnings)

    def _delete_options(self, request: web.Request, body: Any) -> DeleteOptions:
        body = body if isinstance(body, dict) else {}
        grace = body.get("gracePeriodSeconds")
        if "gracePeriodSeconds" in request.query:
            try:
                grace = int(request.query["gracePeriodSeconds"])
            except ValueError:
                raise errors.bad_request("gracePeriodSeconds must be an integer") from None
        preconditions = body.get("preconditions") or {}
        dry_run = self._dry_run(request) or bool(body.get("dryRun"))
        policy, orphan = parse_policy(request.query.get("propagationPolicy", body.get("propagationPolicy")),
                                      request.query.get("orphanDependents", body.get("orphanDependents")))
        return DeleteOptions(grace, preconditions.get("uid"), preconditions.get("resourceVersion"), dry_run,
                             policy, orphan)

    async def _delete(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        options = self._delete_options(request, await self._body(request))
        result = await self.api.delete(registry, info.namespace, info.name, options)
        # Upstream answers 200 for a graceful deletion too (202 only for OrphanDependents=false).
        return self._object_response(request, registry, result.object)

    async def _delete_collection(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.Response:
        options = self._delete_options(request, await self._body(request))
        labels, fields = self._selectors(request)
        items, revision = await registry.list(info.namespace, labels, fields)
        deleted = []
        for item in items:
            meta = item["metadata"]
            try:
                result = await self.api.delete(registry, meta.get("namespace", ""), meta["name"], options)
            except errors.APIError as exc:
                if exc.code == 404:
                    continue
                raise
            deleted.append(result.object)
        return json_response(_list_of(registry, {"resourceVersion": str(revision)}, deleted))

    # watch -----------------------------------------------------------------------------------
    async def _watch(self, request: web.Request, registry: Registry, info: RequestInfo) -> web.StreamResponse:
        labels, fields = self._selectors(request)
        query = request.query
        bookmarks = _bool(query.get("allowWatchBookmarks"))
        send_initial = _optional_bool(query.get("sendInitialEvents"))
        if send_initial and not bookmarks:
            raise errors.invalid_object("meta.k8s.io", "ListOptions", "", [errors.forbidden(
                "allowWatchBookmarks", "allowWatchBookmarks must be set to true when sendInitialEvents is set")])
        try:
            timeout = float(query["timeoutSeconds"]) if "timeoutSeconds" in query else \
                float(random.randint(_MIN_REQUEST_TIMEOUT, 2 * _MIN_REQUEST_TIMEOUT))
        except ValueError:
            raise errors.bad_request("timeoutSeconds must be a number") from None
        rendering = negotiate(request.headers.get("Accept", ""))
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON, "Cache-Control": "no-cache"})
        response.enable_chunked_encoding()
        try:
            resource_watch = await registry.watch(info.namespace, labels, fields, query.get("resourceVersion", ""),
                                                  send_initial)
        except RevisionCompacted as exc:
            # As upstream's watch cache: a 200 stream whose only event is an ERROR carrying 410 Expired.
            await response.prepare(request)
            await response.write(jsoncodec.dumps_line({"type": "ERROR", "object": expired_status(exc)}))
            await response.write_eof()
            return response
        self._watches.add(resource_watch)
        try:
            await response.prepare(request)
            await self._stream_events(response, registry, resource_watch, timeout, bookmarks, rendering,
                                      query.get("includeObject", "Metadata"))
            await response.write_eof()
        except (WatchClosed, ConnectionResetError):
            pass
        finally:
            resource_watch.stop()
            self._watches.discard(resource_watch)
        return response

    @staticmethod
    async def _stream_events(response: web.StreamResponse, registry: Registry, resource_watch, timeout: float,
                             bookmarks: bool, rendering: Rendering, include_object: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (remaining := deadline - loop.time()) > 0:
            event = await resource_watch.next(min(remaining, BOOKMARK_INTERVAL))
            if event is None:
                if not bookmarks or loop.time() >= deadline:
                    continue
                # Nothing is queued for this watcher, so every published revision has been seen.
                event = registry.bookmark(registry.storage.revision)
            if event.type == "BOOKMARK" and not bookmarks:
                continue
            obj = event.object
            if rendering.as_kind == "Table" and event.type != "BOOKMARK":
                obj = render_table(registry.strategy.table(utc_now()), [obj], include_object, rendering.version,
                                   obj["metadata"].get("resourceVersion", ""))
            elif rendering.as_kind == "PartialObjectMetadata" and event.type != "BOOKMARK":
                obj = partial_object_metadata(obj, f"meta.k8s.io/{rendering.version}")
            await response.write(jsoncodec.dumps_line({"type": event.type, "object": obj}))
