"""pods/log, pods/exec, pods/attach and pods/portforward: checked here as upstream's pod REST does, then
proxied to the node server of the pod's node (its InternalIP and `status.daemonEndpoints.kubeletEndpoint.Port`).

Logs stream through chunk by chunk (a follow never buffers); exec and attach relay the upgraded
WebSocket message by message, with the subprotocol the node chose. Port-forward takes three forms:
a WebSocket with channel subprotocols (`?ports=80,443`, the official Python client) is relayed message by
message to the node's `/portForward?port=`; a WebSocket with `SPDY/3.1+portforward.k8s.io` (kubectl 1.35's
default) tunnels SPDY, so it becomes a SPDY upgrade to the node and the binary messages carry its bytes
(upstream's TunnelingHandler); a plain SPDY/3.1 upgrade (kubectl's fallback) is relayed byte for byte. The server authenticates to the
node with its apiserver-kubelet-client certificate (CN kube-apiserver-kubelet-client, O system:masters)
and verifies the node's kubelet-serving certificate (cluster CA, the dialed address, subject
system:node:<node>; apiserver/node_tls.py): a node server without one (a node still waiting for its
serving CSR) or with another node's gets no request, and the client a 500 saying why.
"""
from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from aiohttp import WSMsgType, web

from apiserver import errors
from apiserver.api import API
from apiserver.node_tls import node_address
from shipmate.raw_upgrade import RawUpgradeResponse, UpgradeRefused, open_upgrade
from shipmate.stream_limits import MAX_STREAM_MESSAGE_BYTES

log = logging.getLogger(__name__)

Obj = dict[str, Any]
CONNECT_TIMEOUT = 10.0
POD_PATH = "/api/v1/namespaces/{namespace}/pods/{name}"
_LOG_FLAGS = ("follow", "previous", "timestamps")
_LOG_INTEGERS = {"tailLines": 0, "limitBytes": 1, "sinceSeconds": 1}
# The API's exec/attach flags → kubelet's query names.
_STREAM_FLAGS = {"stdin": "input", "stdout": "output", "stderr": "error", "tty": "tty"}
SPDY_TUNNEL_PREFIX = "SPDY/3.1+"      # WebSocket subprotocols that tunnel SPDY (upstream's constants)
KUBERNETES_SUFFIX = ".k8s.io"
RELAY_CHUNK = 64 * 1024


def _true(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true")


def container_names(pod: Obj) -> list[str]:
    spec = pod.get("spec") or {}
    return [c["name"] for key in ("initContainers", "containers", "ephemeralContainers")
            for c in spec.get(key) or [] if "name" in c]


def resolve_container(pod: Obj, requested: str) -> str:
    """The container a request means: the named one, or the pod's only container (upstream's rules)."""
    name = pod["metadata"]["name"]
    if requested:
        if requested not in container_names(pod):
            raise errors.bad_request(f"container {requested} is not valid for pod {name}")
        return requested
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) == 1:
        return containers[0]["name"]
    if not containers:
        raise errors.bad_request(f"a container name must be specified for pod {name}")
    raise errors.bad_request(f"a container name must be specified for pod {name}, "
                             f"choose one of: [{' '.join(container_names(pod))}]")


def log_query(query: Mapping[str, str], pod_name: str) -> dict[str, str]:
    """PodLogOptions checked as upstream's validation does, in kubelet's query form."""
    result: dict[str, str] = {flag: "true" for flag in _LOG_FLAGS if _true(query.get(flag))}
    problems = []
    for name, minimum in _LOG_INTEGERS.items():
        if name not in query:
            continue
        try:
            value = int(query[name])
        except ValueError:
            raise errors.bad_request(f"{name}: invalid integer value {query[name]!r}") from None
        if value < minimum:
            problems.append(errors.invalid(name, value, "must be greater than or equal to 0" if minimum == 0
                                           else "must be greater than 0"))
        result[name] = str(value)
    if query.get("sinceTime"):
        result["sinceTime"] = query["sinceTime"]
        if "sinceSeconds" in result:
            problems.append(errors.forbidden("sinceTime",
                                             "at most one of `sinceTime` or `sinceSeconds` may be specified"))
    if problems:
        raise errors.invalid_object("", "PodLogOptions", pod_name, problems)
    return result


def stream_query(query: Any, verb: str) -> list[tuple[str, str]]:
    """exec/attach options in kubelet's form: command=... (repeated), input=1, output=1, error=1, tty=1."""
    params = [("command", c) for c in query.getall("command", [])] if verb == "exec" else []
    params += [(kubelet_name, "1") for name, kubelet_name in _STREAM_FLAGS.items() if _true(query.get(name))]
    return params


def forward_ports(query: Any) -> list[int]:
    """PodPortForwardOptions.ports: `ports` repeated and/or comma-separated (upstream's conversion), each 1-65535."""
    ports = []
    for value in query.getall("ports", []):
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            try:
                port = int(item)
            except ValueError:
                raise errors.bad_request(f"ports: invalid integer value {item!r}") from None
            if not 1 <= port <= 65535:
                raise errors.invalid_object("", "PodPortForwardOptions", "", [
                    errors.invalid("ports", port, "must be between 1 and 65535, inclusive")])
            ports.append(port)
    return ports


def offered_protocols(headers: Mapping[str, str], name: str) -> list[str]:
    values = headers.getall(name, []) if hasattr(headers, "getall") else [headers.get(name, "")]
    return [p.strip() for value in values for p in value.split(",") if p.strip()]


def tunnelled_protocols(websocket_protocols: list[str]) -> list[str]:
    """The SPDY protocols a WebSocket tunnels (`SPDY/3.1+portforward.k8s.io` → `portforward.k8s.io`)."""
    return [p[len(SPDY_TUNNEL_PREFIX):] for p in websocket_protocols
            if p.startswith(SPDY_TUNNEL_PREFIX) and p.endswith(KUBERNETES_SUFFIX)]


def _node_url(host: str, port: int, path: str, params: Any) -> str:
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    encoded = urlencode(params)
    return f"https://{netloc}{path}" + (f"?{encoded}" if encoded else "")


def node_error(status: int, body: str) -> errors.APIError:
    """A node server's error answer as the Status upstream's proxy makes of a kubelet's."""
    message = body.strip() or "the server could not complete the request"
    reasons = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound"}
    return errors.APIError(status if status in reasons else 500, reasons.get(status, "InternalError"), message)


class PodProxy:
    def __init__(self, api: API) -> None:
        self.api = api
        self._session: aiohttp.ClientSession | None = None
        self._tls: dict[str, ssl.SSLContext] = {}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(POD_PATH + "/log", self.log)
        for verb in ("exec", "attach"):
            for method in ("GET", "POST"):
                app.router.add_route(method, f"{POD_PATH}/{verb}", self.remote_command)
        for method in ("GET", "POST"):
            app.router.add_route(method, f"{POD_PATH}/portforward", self.port_forward)
        app.on_cleanup.append(self._close)

    def _node_tls(self, node: Obj) -> ssl.SSLContext | bool:
        """The TLS context towards this node (built on first use, kept per node name)."""
        name = node["metadata"]["name"]
        if name not in self._tls:
            if self.api.pki is None:   # an API without PKI (unit tests): no certificate to present
                return False
            self._tls[name] = self.api.pki.kubelet_client_ssl_context(name)
        return self._tls[name]

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None,
                                                                                sock_connect=CONNECT_TIMEOUT))
        return self._session

    async def _close(self, _app: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def _pod_and_node(self, request: web.Request) -> tuple[Obj, str, Obj | None]:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pod = await self.api.registry("", "pods").get(namespace, name)
        container = resolve_container(pod, request.query.get("container", ""))
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = await self.api.registry("", "nodes").get("", node_name) if node_name else None
        return pod, container, node

    # ------------------------------------------------------------------ logs
    async def log(self, request: web.Request) -> web.StreamResponse:
        pod, container, node = await self._pod_and_node(request)
        meta = pod["metadata"]
        params = log_query(request.query, meta["name"])
        if node is None:
            return web.Response(status=200, content_type="text/plain")   # not scheduled: no logs, as upstream
        host, port = node_address(node)
        url = _node_url(host, port, f"/containerLogs/{quote(meta['namespace'])}/{quote(meta['name'])}/"
                                    f"{quote(container)}", params)
        try:
            upstream = await self._client().get(url, ssl=self._node_tls(node))
        except aiohttp.ClientError as error:
            raise errors.APIError(500, "InternalError", f'Get "{url}": {error}') from None
        async with upstream:
            if upstream.status != 200:
                raise node_error(upstream.status, await upstream.text())
            response = web.StreamResponse(headers={"Content-Type": "text/plain"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            ended = await _first_of(_copy_body(upstream, response), _client_gone(request))
            if isinstance(ended, Exception):
                log.info("log stream ended early pod=%s/%s error=%r", meta["namespace"], meta["name"], ended)
        return response

    # ------------------------------------------------------------------ exec / attach
    async def _node_explanation(self, url: str, node: Obj) -> tuple[int, str]:
        try:
            async with self._client().get(url, ssl=self._node_tls(node)) as answer:
                return answer.status, (await answer.text()).strip()
        except aiohttp.ClientError as error:
            return 500, str(error)

    async def remote_command(self, request: web.Request) -> web.StreamResponse:
        verb = request.path.rsplit("/", 1)[1]
        pod, container, node = await self._pod_and_node(request)
        meta = pod["metadata"]
        if node is None:
            raise errors.bad_request(f"pod {meta['name']} does not have a host assigned")
        if verb == "exec" and not request.query.getall("command", []):
            raise errors.bad_request("you must specify at least one command for the container")
        host, port = node_address(node)
        url = _node_url(host, port, f"/{verb}/{quote(meta['namespace'])}/{quote(meta['name'])}/{quote(container)}",
                        stream_query(request.query, verb))
        if request.headers.get("Upgrade", "").lower() != "websocket":
            # SPDY (kubectl's fallback) is not served; the node still says why a session could not start.
            status, explanation = await self._node_explanation(url, node)
            raise node_error(status, f"unable to upgrade connection: {explanation}")
        return await self._relay_websocket(request, node, url)

    async def _relay_websocket(self, request: web.Request, node: Obj, url: str) -> web.StreamResponse:
        offered = offered_protocols(request.headers, "Sec-WebSocket-Protocol")
        try:
            upstream = await self._client().ws_connect(url, protocols=offered, ssl=self._node_tls(node),
                                                       max_msg_size=MAX_STREAM_MESSAGE_BYTES, compress=0,
                                                       autoclose=False)
        except aiohttp.WSServerHandshakeError:
            # The node explains a refusal in its body, which the handshake error drops: ask again plainly.
            status, explanation = await self._node_explanation(url, node)
            raise node_error(status, f"unable to upgrade connection: {explanation}") from None
        except aiohttp.ClientError as error:
            raise errors.APIError(500, "InternalError", f"error dialing backend: {error}") from None
        async with upstream:
            client = web.WebSocketResponse(protocols=[upstream.protocol] if upstream.protocol else (),
                                           max_msg_size=MAX_STREAM_MESSAGE_BYTES, compress=False,
                                           autoclose=False)
            await client.prepare(request)
            await _relay(client, upstream)
        return client

    # ------------------------------------------------------------------ port-forward
    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pod = await self.api.registry("", "pods").get(namespace, name)
        ports = forward_ports(request.query)
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = await self.api.registry("", "nodes").get("", node_name) if node_name else None
        if node is None:
            raise errors.bad_request(f"pod {name} does not have a host assigned")
        host, port = node_address(node)
        path = f"/portForward/{quote(namespace)}/{quote(name)}"
        upgrade = request.headers.get("Upgrade", "").lower()
        if upgrade == "websocket":
            tunnelled = tunnelled_protocols(offered_protocols(request.headers, "Sec-WebSocket-Protocol"))
            if tunnelled:
                return await self._spdy_tunnel(request, node, _node_url(host, port, path, []), tunnelled)
            return await self._relay_websocket(request, node, _node_url(host, port, path,
                                                                        [("port", str(p)) for p in ports]))
        if upgrade.startswith("spdy/"):
            protocols = offered_protocols(request.headers, "X-Stream-Protocol-Version")
            return await self._spdy_relay(request, node, _node_url(host, port, path, []), protocols)
        raise errors.bad_request("Upgrade request required")

    async def _spdy_upstream(self, node: Obj, url: str, protocols: list[str]
                             ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
        tls = self._node_tls(node)
        try:
            reader, writer, headers = await open_upgrade(
                url, "SPDY/3.1", [("X-Stream-Protocol-Version", p) for p in protocols],
                tls=tls if isinstance(tls, ssl.SSLContext) else None, timeout=CONNECT_TIMEOUT)
        except UpgradeRefused as refused:
            raise node_error(refused.status, f"unable to upgrade connection: {refused.body.strip()}") from None
        except (OSError, asyncio.TimeoutError, ValueError, ssl.SSLError) as error:
            raise errors.APIError(500, "InternalError", f"error dialing backend: {error}") from None
        if "spdy/3.1" not in (headers.get("upgrade") or [""])[0].lower():
            writer.close()
            raise errors.APIError(500, "InternalError", "unable to upgrade: missing upgrade headers in response")
        return reader, writer, (headers.get("x-stream-protocol-version") or [""])[0]

    async def _spdy_tunnel(self, request: web.Request, node: Obj, url: str, protocols: list[str]
                           ) -> web.StreamResponse:
        """SPDY in WebSocket binary messages from the client, plain SPDY to the node."""
        reader, writer, chosen = await self._spdy_upstream(node, url, protocols)
        try:
            client = web.WebSocketResponse(protocols=[SPDY_TUNNEL_PREFIX + chosen] if chosen else (),
                                           max_msg_size=MAX_STREAM_MESSAGE_BYTES, compress=False)
            await client.prepare(request)

            async def up() -> None:
                async for message in client:
                    if message.type != WSMsgType.BINARY:
                        return       # the tunnel carries binary messages only (upstream: "invalid message type")
                    writer.write(message.data)
                    await writer.drain()

            async def down() -> None:
                while chunk := await reader.read(RELAY_CHUNK):
                    await client.send_bytes(chunk)

            ended = await _first_of(up(), down())
            if isinstance(ended, Exception):
                log.info("port-forward tunnel ended pod=%s error=%r", request.match_info["name"], ended)
            await client.close()
            return client
        finally:
            writer.close()

    async def _spdy_relay(self, request: web.Request, node: Obj, url: str, protocols: list[str]
                          ) -> web.StreamResponse:
        """A client's SPDY upgrade relayed byte for byte to the node's."""
        reader, writer, chosen = await self._spdy_upstream(node, url, protocols)
        try:
            response = RawUpgradeResponse("SPDY/3.1", {"X-Stream-Protocol-Version": chosen} if chosen else {})
            await response.prepare(request)

            async def up() -> None:
                while chunk := await response.read():
                    writer.write(chunk)
                    await writer.drain()

            async def down() -> None:
                while chunk := await reader.read(RELAY_CHUNK):
                    await response.write(chunk)

            ended = await _first_of(up(), down())
            if isinstance(ended, Exception):
                log.info("port-forward relay ended pod=%s error=%r", request.match_info["name"], ended)
            return response
        finally:
            writer.close()


async def _first_of(*coroutines: Any) -> Any:
    """Run the coroutines until one ends; cancel the others. The first one's result or exception."""
    tasks = [asyncio.create_task(coroutine) for coroutine in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return next(outcome for task, outcome in zip(tasks, outcomes) if task in done)


async def _copy_body(upstream: aiohttp.ClientResponse, response: web.StreamResponse) -> None:
    async for chunk in upstream.content.iter_any():
        await response.write(chunk)
    await response.write_eof()


async def _client_gone(request: web.Request, period: float = 1.0) -> None:
    """Returns once the client's connection closed (a follow may wait long for its next line)."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(period)


async def _relay(client: web.WebSocketResponse, node: aiohttp.ClientWebSocketResponse) -> None:
    """Copy messages both ways; whichever side closes first closes the other with its code."""
    async def copy(source: Any, target: Any) -> int:
        async for message in source:
            if message.type == WSMsgType.BINARY:
                await target.send_bytes(message.data)
            elif message.type == WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type == WSMsgType.CLOSE:
                return message.data or aiohttp.WSCloseCode.OK
            else:
                break
        return source.close_code or aiohttp.WSCloseCode.OK

    ended = await _first_of(copy(client, node), copy(node, client))
    code = aiohttp.WSCloseCode.INTERNAL_ERROR if isinstance(ended, BaseException) else ended
    await client.close(code=code)
    await node.close(code=code)
