"""The agent's HTTPS server on :10250 (kubelet's port): /healthz, /metrics, /metrics/resource, /stats/summary,
/containerLogs, /exec, /attach, /portForward.
Only clients with a certificate signed by the cluster CA get through the TLS handshake, and each request
is then authorized by the API server for that certificate's user (authz.py)."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent.node_server.authz import (AuthorizationError, WebhookAuthorizer, certificate_subject, error_message,
                                     forbidden_message, request_attributes)
from agent.node_server.cri_log import LogOptionsError, parse_log_query
from agent.node_server.log_reader import stream_log
from agent.node_server.metrics import NodeMetrics
from agent.node_server.pod_lookup import ContainerLookupError, has_container, log_container_id, running_container_id
from agent.node_server.portforward import (PROTOCOL as PORT_FORWARD_PROTOCOL, WEBSOCKET_PROTOCOLS as
                                           PORT_FORWARD_WEBSOCKET_PROTOCOLS, PortForwardError, PortForwardLimits,
                                           RuntimeBackend, SessionCounter, SpdyServer, parse_ports, serve_websocket)
from agent.node_server.remotecommand import (ATTACH_STDIN_SETTLE_SECONDS, RUNTIME_PROTOCOL, WEBSOCKET_PROTOCOLS,
                                             RemoteCommandError, bridge, parse_stream_options)
from agent.node_server.spdy import SpdyError, SpdySession
from agent.stats import StatsProvider
from agent.stats.formats import filesystem, resource_metrics, summary
from agent.node_server.tls import server_context
from shipmate.raw_upgrade import RawUpgradeResponse
from shipmate.stream_limits import MAX_STREAM_MESSAGE_BYTES
from cri.client import CRIClient
from cri.errors import CRIError
from cri.gen import api_pb2

log = logging.getLogger(__name__)

Obj = dict[str, Any]
PodGetter = Callable[[str, str], "Obj | None"]   # (namespace, name) → the pod with its latest status


@dataclass(frozen=True)
class NodeServerConfig:
    port: int
    serving_pem: str                     # kubelet-serving certificate + key (agent/cert_rotation.py keeps it)
    node_name: str
    client_ca_file: str                  # the cluster CA: clients must present a certificate it signed
    bind_address: str | None = None      # None: every address
    certificate_poll: float = 1.0        # how often to look for the first serving certificate
    port_forward: PortForwardLimits = PortForwardLimits()
    root_dir: str = "/"                  # the filesystem /stats/summary reports as the node's


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message + "\n", content_type="text/plain")


class NodeServer:
    def __init__(self, runtime: CRIClient, get_pod: PodGetter, config: NodeServerConfig,
                 metrics: NodeMetrics, authorizer: WebhookAuthorizer, stats: StatsProvider | None = None) -> None:
        self.runtime, self.get_pod, self.config, self.metrics = runtime, get_pod, config, metrics
        self.authorizer = authorizer
        self.stats = stats or StatsProvider(runtime, config.node_name)
        self._tls: ssl.SSLContext | None = None
        self.app = web.Application(middlewares=[self.authorize])
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/metrics", self.metrics_text)
        self.app.router.add_get("/metrics/resource", self.resource_metrics)
        self.app.router.add_get("/stats/summary", self.stats_summary)
        self.app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        for verb in ("exec", "attach"):
            for method in ("GET", "POST"):
                self.app.router.add_route(method, f"/{verb}/{{namespace}}/{{pod}}/{{container}}", self.remote_command)
        for method in ("GET", "POST"):
            self.app.router.add_route(method, "/portForward/{namespace}/{pod}", self.port_forward)
            self.app.router.add_route(method, "/portForward/{namespace}/{pod}/{uid}", self.port_forward)
        self.port_forwards = SessionCounter(config.port_forward)
        metrics.track_port_forward(lambda: self.port_forwards.sessions, lambda: self.port_forwards.streams)

    async def _first_certificate(self) -> None:
        """Returns once the serving certificate file exists (issued through the node's kubelet-serving CSR)."""
        told = False
        while not await asyncio.to_thread(os.path.exists, self.config.serving_pem):
            if not told:
                log.info("node server waiting for its kubelet-serving certificate (a CSR the server approves when "
                         "its names are this node's addresses) node=%s file=%s", self.config.node_name,
                         self.config.serving_pem)
                told = True
            await asyncio.sleep(self.config.certificate_poll)

    def reload_certificate(self) -> None:
        """A rotated serving certificate: new connections get it (called by the certificate rotator)."""
        if self._tls is not None:
            self._tls.load_cert_chain(self.config.serving_pem)
            log.info("node server certificate reloaded node=%s", self.config.node_name)

    async def run(self) -> None:
        """Serve until cancelled (a root task of the agent)."""
        cfg = self.config
        await self._first_certificate()
        runner = web.AppRunner(self.app, access_log=None)
        await runner.setup()
        try:
            self._tls = await asyncio.to_thread(server_context, cfg.serving_pem, cfg.client_ca_file)
            site = web.TCPSite(runner, cfg.bind_address, cfg.port, ssl_context=self._tls)
            await site.start()
            log.info("node server listening port=%d node=%s client_ca=%s", cfg.port, cfg.node_name,
                     cfg.client_ca_file)
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    # ------------------------------------------------------------------ authorization
    @web.middleware
    async def authorize(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
        tls = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = tls.getpeercert(binary_form=True) if tls is not None else None
        if not der:
            return _text(401, "Unauthorized")
        attributes = request_attributes(certificate_subject(der), request.method, request.path,
                                        self.config.node_name)
        try:
            allowed = await self.authorizer.authorize(attributes)
        except AuthorizationError as error:
            log.error("node server authorization failed user=%s path=%s error=%s", attributes[0].subject.user,
                      request.path, error)
            return _text(500, error_message(attributes[0]))
        if not allowed:
            return _text(403, forbidden_message(attributes))
        return await handler(request)

    # ------------------------------------------------------------------ simple endpoints
    async def healthz(self, _request: web.Request) -> web.Response:
        return _text(200, "ok")

    async def metrics_text(self, _request: web.Request) -> web.Response:
        body = await asyncio.to_thread(self.metrics.render)
        return web.Response(body=body, headers={"Content-Type": self.metrics.content_type})

    async def resource_metrics(self, _request: web.Request) -> web.Response:
        """kubelet's /metrics/resource: what metrics-server (here: the API server) scrapes."""
        snapshot = await self.stats.snapshot()
        return web.Response(text=resource_metrics(snapshot), content_type="text/plain",
                            headers={"X-Content-Type-Options": "nosniff"}, charset="utf-8")

    async def stats_summary(self, request: web.Request) -> web.Response:
        """kubelet's Summary API (stats/v1alpha1); `only_cpu_and_memory=true` leaves the filesystem out."""
        only = request.query.get("only_cpu_and_memory", "").lower() == "true"
        snapshot = await self.stats.snapshot()
        fs = None if only else await asyncio.to_thread(filesystem, self.config.root_dir)
        return web.json_response(summary(self.config.node_name, snapshot, fs, only))

    def _pod(self, request: web.Request) -> Obj:
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        pod = self.get_pod(namespace, name)
        if pod is None:
            raise ContainerLookupError(f'pod "{name}" does not exist', 404)
        container = request.match_info["container"]
        if not has_container(pod, container):
            raise ContainerLookupError(f'container "{container}" not found in pod "{name}"', 404)
        return pod

    # ------------------------------------------------------------------ logs
    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        container = request.match_info["container"]
        try:
            options = parse_log_query(request.query, time.time_ns())
            pod = self._pod(request)
            container_id = log_container_id(pod, container, options.previous)
        except LogOptionsError as error:
            return _text(400, str(error))
        except ContainerLookupError as error:
            return _text(error.http_status, str(error))
        try:
            path = (await self.runtime.container_status(container_id)).status.log_path
        except CRIError as error:
            return _text(400, f'failed to get container status "{container_id}": {error}')
        if not path or not await asyncio.to_thread(os.path.exists, path):
            return _text(400, f'failed to open log file "{path}" of container "{container}"')

        async def still_running() -> bool:
            if request.transport is None or request.transport.is_closing():
                return False     # the client went away: stop following
            try:
                status = await self.runtime.container_status(container_id)
            except CRIError:
                return False
            return status.status.state == api_pb2.CONTAINER_RUNNING

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        try:
            await stream_log(path, options, response.write, still_running)
            await response.write_eof()
        except (ConnectionResetError, FileNotFoundError) as error:
            log.info("log stream ended early pod=%s container=%s error=%r", request.match_info["pod"], container,
                     error)
        return response

    # ------------------------------------------------------------------ exec / attach
    async def remote_command(self, request: web.Request) -> web.StreamResponse:
        verb = request.path.split("/")[1]
        command = request.query.getall("command", [])
        try:
            options = parse_stream_options(request.query)
            if verb == "exec" and not command:
                raise RemoteCommandError("you must specify at least one command for the container")
            pod = self._pod(request)
            container_id = running_container_id(pod, request.match_info["container"])
        except RemoteCommandError as error:
            return _text(400, str(error))
        except ContainerLookupError as error:
            return _text(error.http_status, str(error))
        ws = web.WebSocketResponse(protocols=WEBSOCKET_PROTOCOLS, max_msg_size=MAX_STREAM_MESSAGE_BYTES,
                                   compress=False)
        ready = ws.can_prepare(request)
        if not ready.ok or ready.protocol is None:
            return _text(400, "remote command needs a WebSocket upgrade with subprotocol "
                              + " or ".join(WEBSOCKET_PROTOCOLS))
        try:
            url = await self._runtime_url(verb, container_id, command, options)
            session = await SpdySession.connect(url, [RUNTIME_PROTOCOL])
        except (CRIError, SpdyError, OSError, asyncio.TimeoutError) as error:
            return _text(500, f"error starting {verb} in container {container_id}: {error}")
        await ws.prepare(request)
        log.info("%s started pod=%s/%s container=%s protocol=%s tty=%s stdin=%s", verb,
                 request.match_info["namespace"], request.match_info["pod"], request.match_info["container"],
                 ready.protocol, options.tty, options.stdin)
        await bridge(ws, session, options,
                     stdin_settle=ATTACH_STDIN_SETTLE_SECONDS if verb == "attach" and options.stdin else 0.0)
        await ws.close()
        return ws

    async def _runtime_url(self, verb: str, container_id: str, command: list[str], options: Any) -> str:
        if verb == "exec":
            return await self.runtime.exec(api_pb2.ExecRequest(
                container_id=container_id, cmd=command, tty=options.tty, stdin=options.stdin,
                stdout=options.stdout, stderr=options.stderr))
        return await self.runtime.attach(api_pb2.AttachRequest(
            container_id=container_id, stdin=options.stdin, tty=options.tty, stdout=options.stdout,
            stderr=options.stderr))

    # ------------------------------------------------------------------ port-forward
    async def _ready_sandbox(self, pod: Obj) -> str:
        uid = pod["metadata"].get("uid", "")
        sandboxes = await self.runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(
            label_selector={"io.kubernetes.pod.uid": uid},
            state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)))
        if not sandboxes:
            raise ContainerLookupError(f'pod "{pod["metadata"]["name"]}" has no running sandbox', 400)
        return max(sandboxes, key=lambda s: (s.created_at, s.metadata.attempt)).id

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """kubelet's /portForward/{namespace}/{pod}[/{uid}]: SPDY (portforward.k8s.io) or WebSocket (?port=)."""
        namespace, name = request.match_info["namespace"], request.match_info["pod"]
        limits = self.config.port_forward
        pod = self.get_pod(namespace, name)
        if pod is None:
            return _text(404, "pod does not exist")
        if request.match_info.get("uid") and pod["metadata"].get("uid") != request.match_info["uid"]:
            return _text(404, "pod not found")
        upgrade = request.headers.get("Upgrade", "").lower()
        websocket = upgrade == "websocket"
        ports: list[int] = []
        if websocket or "port" in request.query:     # a plain GET is the API server asking why an upgrade failed
            try:
                ports = parse_ports(request.query.getall("port", []), limits)
            except PortForwardError as error:
                return _text(400, str(error))
        try:
            sandbox_id = await self._ready_sandbox(pod)
        except ContainerLookupError as error:
            return _text(error.http_status, str(error))
        except CRIError as error:
            return _text(500, f"error finding the sandbox of pod {name}: {error}")
        if upgrade.startswith("spdy/"):
            offered = [p.strip() for value in request.headers.getall("X-Stream-Protocol-Version", [])
                       for p in value.split(",") if p.strip()]
            if PORT_FORWARD_PROTOCOL not in offered:
                return _text(403, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, "
                                  f"server supports [{PORT_FORWARD_PROTOCOL}]")
        elif not websocket:
            return _text(400, "unable to upgrade: port-forward needs a SPDY/3.1 or WebSocket upgrade")
        if not self.port_forwards.try_acquire():
            return _text(429, f"too many port-forward connections ({limits.max_sessions}) on this node")
        backend: RuntimeBackend | None = None
        label = f"{namespace}/{name}"
        try:
            try:
                url = await self.runtime.port_forward(sandbox_id, ports)
                backend = await RuntimeBackend.connect(url)
            except (CRIError, SpdyError, OSError, asyncio.TimeoutError) as error:
                return _text(500, f"error starting port-forward to pod {label}: {error}")
            log.info("port-forward started pod=%s transport=%s ports=%s", label,
                     "websocket" if websocket else "spdy", ports or "per stream")
            if websocket:
                ws = web.WebSocketResponse(protocols=PORT_FORWARD_WEBSOCKET_PROTOCOLS,
                                           max_msg_size=MAX_STREAM_MESSAGE_BYTES, compress=False)
                await ws.prepare(request)
                self.port_forwards.streams += len(ports)
                try:
                    await serve_websocket(ws, ports, backend, limits, label)
                finally:
                    self.port_forwards.streams -= len(ports)
                await ws.close()
                return ws
            response = RawUpgradeResponse("SPDY/3.1", {"X-Stream-Protocol-Version": PORT_FORWARD_PROTOCOL})
            await response.prepare(request)
            server = SpdyServer(response.read, response.write, backend, limits, self.port_forwards, label)
            await server.serve()
            return response
        finally:
            if backend is not None:
                await backend.close()
            self.port_forwards.release()
            log.info("port-forward ended pod=%s", label)
