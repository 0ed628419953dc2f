"""Probes: spec defaults, thresholds, HTTP classification and redirects, handlers against local
servers, and the manager's worker loop against a fake runtime."""
from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from agent.prober.handlers import (classify_http, follow_redirect, grpc_health_request, grpc_health_status,
                                   http_headers, http_probe, http_url, tcp_probe)
from agent.prober.manager import ProbeManager
from agent.prober.spec import ProbeSpecError, ProbeType, Result, container_probes, parse_probe, resolve_port
from agent.prober.thresholds import ThresholdCounter
from agent.runtime_state import ContainerPhase, ContainerState, PodRuntimeStatus, SandboxState


# ---------------------------------------------------------------- spec
def test_probe_defaults_are_upstreams() -> None:
    spec = parse_probe(ProbeType.LIVENESS, {"exec": {"command": ["true"]}})
    assert (spec.initial_delay, spec.period, spec.timeout, spec.success_threshold, spec.failure_threshold) == \
        (0, 10, 1, 1, 3)
    assert spec.handler_kind == "exec"
    with pytest.raises(ProbeSpecError, match="exactly one handler"):
        parse_probe(ProbeType.READINESS, {"exec": {"command": ["true"]}, "tcpSocket": {"port": 1}})
    container = {"name": "c", "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 2},
                 "startupProbe": {"httpGet": {"port": 80}}}
    assert [(s.probe_type, s.period) for s in container_probes(container)] == \
        [(ProbeType.READINESS, 2), (ProbeType.STARTUP, 10)]


def test_named_ports() -> None:
    container = {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]}
    assert resolve_port("http", container) == 8080
    assert resolve_port(81, container) == 81 and resolve_port("82", container) == 82
    with pytest.raises(ProbeSpecError, match="couldn't find port: admin in web"):
        resolve_port("admin", container)


# ---------------------------------------------------------------- thresholds
def test_thresholds_publish_only_after_a_run() -> None:
    counter = ThresholdCounter(success_threshold=2, failure_threshold=3)
    assert [counter.observe(r) for r in [Result.FAILURE, Result.FAILURE, Result.FAILURE, Result.FAILURE]] == \
        [None, None, Result.FAILURE, Result.FAILURE]
    assert [counter.observe(r) for r in [Result.SUCCESS, Result.FAILURE, Result.SUCCESS, Result.SUCCESS]] == \
        [None, None, None, Result.SUCCESS]
    counter.reset()
    assert counter.observe(Result.FAILURE) is None


# ---------------------------------------------------------------- http
def test_http_classification() -> None:
    assert classify_http(200, "ok").result == Result.SUCCESS
    assert classify_http(399, "").result == Result.SUCCESS
    redirect = classify_http(302, "moved")
    assert redirect.result == Result.SUCCESS and redirect.warning
    assert redirect.output == "Probe terminated redirects, Response body: moved"
    failed = classify_http(500, "boom")
    assert failed.result == Result.FAILURE and failed.output == "HTTP probe failed with statuscode: 500"
    assert classify_http(404, "").result == Result.FAILURE


def test_redirects_followed_only_to_the_same_host() -> None:
    assert follow_redirect("http://10.0.0.1:80/a", "/b", 0) == "http://10.0.0.1:80/b"
    assert follow_redirect("http://10.0.0.1:80/a", "http://10.0.0.1:81/c", 3) == "http://10.0.0.1:81/c"
    assert follow_redirect("http://10.0.0.1:80/a", "http://example.com/", 0) is None
    with pytest.raises(Exception, match="stopped after 10 redirects"):
        follow_redirect("http://10.0.0.1/a", "/b", 10)


def test_http_url_and_headers() -> None:
    container = {"name": "c", "ports": [{"name": "web", "containerPort": 8080}]}
    assert http_url({"port": "web", "path": "healthz"}, container, "10.1.2.3") == "http://10.1.2.3:8080/healthz"
    assert http_url({"port": 443, "scheme": "HTTPS", "host": "127.0.0.1"}, container, "x") == "https://127.0.0.1:443"
    headers = http_headers({"httpHeaders": [{"name": "user-agent", "value": "mine"}, {"name": "X-A", "value": "1"}]})
    assert headers == {"Accept": "*/*", "user-agent": "mine", "X-A": "1"}
    assert http_headers({})["User-Agent"] == "kube-probe/1.35"


async def _serve(routes: web.RouteTableDef) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def test_http_probe_against_a_server() -> None:
    routes = web.RouteTableDef()
    seen: dict[str, str] = {}

    @routes.get("/ok")
    async def ok(request: web.Request) -> web.Response:
        seen.update(request.headers)
        return web.Response(text="fine")

    @routes.get("/bad")
    async def bad(_request: web.Request) -> web.Response:
        return web.Response(status=503)

    @routes.get("/local")
    async def local(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/ok")

    @routes.get("/away")
    async def away(_request: web.Request) -> web.Response:
        raise web.HTTPFound("http://192.0.2.1/elsewhere")

    @routes.get("/slow")
    async def slow(_request: web.Request) -> web.Response:
        await asyncio.sleep(1.3)
        return web.Response()

    runner, port = await _serve(routes)
    base = f"http://127.0.0.1:{port}"
    try:
        headers = http_headers({"httpHeaders": [{"name": "X-Probe", "value": "yes"}]})
        outcome = await http_probe(base + "/ok", headers, 1)
        assert outcome.result == Result.SUCCESS and outcome.output == "fine"
        assert seen["User-Agent"] == "kube-probe/1.35" and seen["X-Probe"] == "yes"
        assert (await http_probe(base + "/bad", headers, 1)).output == "HTTP probe failed with statuscode: 503"
        followed = await http_probe(base + "/local", headers, 1)
        assert followed.result == Result.SUCCESS and not followed.warning
        stopped = await http_probe(base + "/away", headers, 1)
        assert stopped.result == Result.SUCCESS and stopped.warning
        started = time.monotonic()
        timed_out = await http_probe(base + "/slow", headers, 1)
        assert timed_out.result == Result.FAILURE and "context deadline exceeded" in timed_out.output
        assert time.monotonic() - started < 2
    finally:
        await runner.cleanup()
    refused = await http_probe(base + "/ok", {}, 1)
    assert refused.result == Result.FAILURE
    assert refused.output == f'Get "{base}/ok": dial tcp 127.0.0.1:{port}: connect: connection refused'


async def test_tcp_probe() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    assert (await tcp_probe("127.0.0.1", port, 1)).result == Result.SUCCESS
    server.close()
    await server.wait_closed()
    refused = await tcp_probe("127.0.0.1", port, 1)
    assert refused.result == Result.FAILURE
    assert refused.output == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


def test_grpc_health_wire_format() -> None:
    assert grpc_health_request("") == b""
    assert grpc_health_request("svc") == b"\x0a\x03svc"
    assert grpc_health_status(b"\x08\x01") == 1
    assert grpc_health_status(b"") == 0


# ---------------------------------------------------------------- manager
class FakeRuntime:
    def __init__(self, exit_codes: list[int]):
        self.exit_codes = exit_codes
        self.execs: list[list[str]] = []
        self.stopped: list[tuple[str, int]] = []

    async def exec_sync(self, container_id: str, cmd: list[str], timeout: int):
        from cri.gen import api_pb2
        self.execs.append(cmd)
        code = self.exit_codes.pop(0) if len(self.exit_codes) > 1 else self.exit_codes[0]
        return api_pb2.ExecSyncResponse(stdout=b"out\n", exit_code=code)

    async def stop_container(self, container_id: str, timeout: int) -> None:
        self.stopped.append((container_id, timeout))


class FakeRecorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, event_type: str, reason: str, message: str, field_path: str = "") -> None:
        self.events.append((event_type, reason, message, field_path))


def _pod(probes: dict, restart_policy: str = "Always") -> dict:
    container = {"name": "app", "image": "i", **probes}
    return {"metadata": {"uid": "u1", "name": "p", "namespace": "ns"},
            "spec": {"containers": [container], "restartPolicy": restart_policy,
                     "terminationGracePeriodSeconds": 1}}


def _runtime(container_id: str = "c1", started_ago: float = 5.0) -> PodRuntimeStatus:
    started_ns = int((time.time() - started_ago) * 1e9)
    return PodRuntimeStatus(uid="u1", sandboxes=[SandboxState("s1", 0, True, ip="10.0.0.2")],
                            containers=[ContainerState(container_id, "app", 0, ContainerPhase.RUNNING,
                                                       started_at=started_ns)])


async def _settle(condition, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_readiness_starts_false_then_follows_probe() -> None:
    runtime, recorder, changes = FakeRuntime([1, 0]), FakeRecorder(), []
    manager = ProbeManager(runtime, recorder, changes.append)
    manager.started_monotonic -= 100                     # no start-up jitter
    pod = _pod({"readinessProbe": {"exec": {"command": ["check"]}, "periodSeconds": 1}})
    manager.sync_pod(pod, _runtime())
    assert manager.readiness("u1", "app") is False
    assert manager.started("u1", "app") is True
    await _settle(lambda: manager.readiness("u1", "app"))
    assert runtime.execs[:2] == [["check"], ["check"]]
    assert ("Warning", "Unhealthy", "Readiness probe failed: out\n", "spec.containers{app}") in recorder.events
    assert "u1" in changes
    # A new container instance starts unready again.
    manager.sync_pod(pod, _runtime("c2"))
    assert manager.readiness("u1", "app") is False
    await manager.stop()


async def test_liveness_failure_after_threshold_kills_the_container() -> None:
    runtime, recorder = FakeRuntime([1]), FakeRecorder()
    manager = ProbeManager(runtime, recorder, lambda uid: None)
    manager.started_monotonic -= 100
    pod = _pod({"livenessProbe": {"exec": {"command": ["alive"]}, "periodSeconds": 1, "failureThreshold": 2}})
    observed = _runtime()
    manager.sync_pod(pod, observed)
    assert not await manager.kill_unhealthy(pod, observed)
    await _settle(lambda: len(runtime.execs) >= 2, timeout=4)
    await _settle(lambda: manager._results[("u1", "app", ProbeType.LIVENESS)] == ("c1", Result.FAILURE))
    assert await manager.kill_unhealthy(pod, observed)
    assert runtime.stopped == [("c1", 2)]                # grace at least kubelet's minimum of 2 s
    assert ("Normal", "Killing", "Container app failed liveness probe, will be restarted",
            "spec.containers{app}") in recorder.events
    # On hold until the replacement appears: no more probes of c1.
    count = len(runtime.execs)
    await asyncio.sleep(1.2)
    assert len(runtime.execs) == count
    await manager.stop()


async def test_startup_probe_gates_liveness_and_readiness() -> None:
    runtime = FakeRuntime([0])
    manager = ProbeManager(runtime, FakeRecorder(), lambda uid: None)
    manager.started_monotonic -= 100
    pod = _pod({"startupProbe": {"exec": {"command": ["started"]}, "periodSeconds": 1},
                "readinessProbe": {"exec": {"command": ["ready"]}, "periodSeconds": 1}})
    manager.sync_pod(pod, _runtime())
    assert not manager.started("u1", "app") and not manager.readiness("u1", "app")
    await _settle(lambda: manager.started("u1", "app"))
    assert runtime.execs[0] == ["started"]
    await _settle(lambda: manager.readiness("u1", "app"))
    await manager.stop()


async def test_initial_delay_is_respected() -> None:
    runtime = FakeRuntime([0])
    manager = ProbeManager(runtime, FakeRecorder(), lambda uid: None)
    manager.started_monotonic -= 100
    pod = _pod({"readinessProbe": {"exec": {"command": ["r"]}, "periodSeconds": 1, "initialDelaySeconds": 30}})
    manager.sync_pod(pod, _runtime(started_ago=1))
    await asyncio.sleep(0.3)
    assert runtime.execs == [] and not manager.readiness("u1", "app")
    manager.remove_pod("u1")
    assert manager.readiness("u1", "app")                # unknown pod: nothing holds it back
    await manager.stop()


async def test_agent_restart_keeps_readiness_of_a_running_container() -> None:
    runtime = FakeRuntime([1])
    manager = ProbeManager(runtime, FakeRecorder(), lambda uid: None)
    pod = _pod({"readinessProbe": {"exec": {"command": ["r"]}, "periodSeconds": 1, "failureThreshold": 1},
                "startupProbe": {"exec": {"command": ["s"]}, "periodSeconds": 1}})
    pod["status"] = {"containerStatuses": [{"name": "app", "containerID": "containerd://c1", "ready": True,
                                            "started": True}]}
    manager.sync_pod(pod, _runtime("c1"))
    assert manager.started("u1", "app") and manager.readiness("u1", "app")
    # A different container than the status shows starts from the initial values.
    other = ProbeManager(runtime, FakeRecorder(), lambda uid: None)
    other.sync_pod(pod, _runtime("c2"))
    assert not other.readiness("u1", "app") and not other.started("u1", "app")
    await manager.stop()
    await other.stop()


async def test_grpc_probe_against_a_health_server() -> None:
    import grpc

    from agent.prober.handlers import grpc_probe

    async def check(request: bytes, _context) -> bytes:
        return b"\x08\x02" if request == grpc_health_request("sick") else b"\x08\x01"

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert (await grpc_probe("127.0.0.1", port, "", 1)).result == Result.SUCCESS
        sick = await grpc_probe("127.0.0.1", port, "sick", 1)
        assert sick.result == Result.FAILURE and sick.output == 'service unhealthy (responded with "NOT_SERVING")'
    finally:
        await server.stop(None)
    down = await grpc_probe("127.0.0.1", port, "", 1)
    assert down.result == Result.FAILURE and "failed to connect service" in down.output
