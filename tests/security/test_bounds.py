"""Bounds: what one client can make a real `shipmate server` (own port and data dir) spend. Each test
reproduces an exhaustion attempt and asserts upstream's refusal and that nothing was written."""
from __future__ import annotations

import asyncio
import json
import re
import time

import aiohttp
import pytest

from apiserver.patch import LIMITS

pytestmark = pytest.mark.integration

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


def _session(server, **kwargs) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(ssl=server.ssl_context(), limit=0),
                                 **kwargs)


async def _patch(session: aiohttp.ClientSession, name: str, body, content_type: str) -> tuple[int, dict]:
    async with session.patch(f"{CONFIGMAPS}/{name}", data=json.dumps(body),
                             headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


async def test_amplifying_patches_are_refused_before_the_result_is_built(server):
    async with _session(server) as session:
        async with session.post(CONFIGMAPS, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "amp"},
                                                  "data": {"a": "x" * 200_000}}) as response:
            assert response.status == 201
            before = await response.json()
        # 40 copies of a 200 kB value: 8 MB if built (and a doubling copy of the root would be 2^40 times).
        copies = [{"op": "copy", "from": "/data/a", "path": f"/data/b{i}"} for i in range(40)]
        started = time.monotonic()
        status, body = await _patch(session, "amp", copies, "application/json-patch+json")
        assert (status, body["reason"]) == (422, "Invalid"), body
        assert body["message"].startswith("Unable to complete the copy, the accumulated size increase of copy is ")
        assert body["message"].endswith(f"exceeding the limit {LIMITS.max_copy_bytes}")
        doubling = [{"op": "copy", "from": "", "path": f"/k{i}"} for i in range(60)]
        status, body = await _patch(session, "amp", doubling, "application/json-patch+json")
        assert status == 422 and "accumulated size increase of copy" in body["message"]
        # Merge and strategic merge: the result is bounded by the request limit (413).
        grow = {"metadata": {"annotations": {"big": "y" * (3 * 1024 * 1024 - 100_000)}}}
        for content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            status, body = await _patch(session, "amp", grow, content_type)
            assert (status, body["reason"], body["message"]) == (
                413, "RequestEntityTooLarge", f"Request entity too large: limit is {LIMITS.max_result_bytes}"), body
        assert time.monotonic() - started < 10
        async with session.get(f"{CONFIGMAPS}/amp") as response:
            after = await response.json()
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]  # nothing written
        assert after["data"] == {"a": "x" * 200_000}
    assert server.process.poll() is None


def _series(metrics_text: str) -> set[str]:
    """The label sets of the request counter (each one also has a duration histogram)."""
    return {line.split(" ")[0] for line in metrics_text.splitlines() if line.startswith("apiserver_request_total{")}


async def test_random_urls_from_anonymous_and_authenticated_clients_add_no_metric_series(server):
    import random
    import ssl
    import string
    rng = random.Random(11)

    def word() -> str:
        return "".join(rng.choice(string.ascii_lowercase + string.digits + "-.") for _ in range(rng.randint(3, 10)))

    shapes = ["/api/{}/{}", "/apis/{}/{}/{}", "/apis/{}/{}/namespaces/{}/{}/{}/{}", "/api/v1/namespaces/{}/pods/{}/{}",
              "/api/v1/{}", "/{}/{}"]
    anonymous_tls = ssl.create_default_context()
    anonymous_tls.check_hostname = False
    anonymous_tls.verify_mode = ssl.CERT_NONE
    async with _session(server) as admin, aiohttp.ClientSession(
            server.url, connector=aiohttp.TCPConnector(ssl=anonymous_tls)) as anonymous:
        async def scrape() -> set[str]:
            async with admin.get("/metrics") as response:
                return _series(await response.text())

        async def send_random(count: int) -> None:
            for index in range(count):
                shape = rng.choice(shapes)
                path = shape.format(*(word() for _ in range(shape.count("{}"))))
                method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "PROPFIND"])
                async with (admin if index % 2 else anonymous).request(method, path) as response:
                    await response.read()

        start = await scrape()
        await send_random(1000)  # every (verb, scope, code) shape these requests can have appears once
        middle = await scrape()
        await send_random(1000)
        end = await scrape()
    assert len(middle - start) <= 80, sorted(middle - start)
    assert len(end - middle) <= 5, sorted(end - middle)  # 1000 more random URLs: (almost) nothing new
    resources = {re.search(r'[{,]resource="([^"]*)"', labels).group(1) for labels in end}
    assert resources <= {"", "unknown", "pods", "namespaces"}, resources  # never a word from a URL
    assert server.process.poll() is None


async def test_pathological_selectors_are_answered_400_at_once_and_others_stay_served(server):
    async with _session(server) as session:
        async def status_of(query: str) -> tuple[int, float]:
            started = time.monotonic()
            async with session.get(f"{CONFIGMAPS}?{query}") as response:
                await response.read()
                return response.status, time.monotonic() - started

        # A run of blanks ("+" in a query) without an operator: a backtracking parser spends ~1 s on each.
        blanks = "fieldSelector=a" + "+" * 8000 + "x"
        started = time.monotonic()
        results = await asyncio.gather(*(status_of(blanks) for _ in range(5)), status_of("limit=1"))
        assert [status for status, _ in results] == [400] * 5 + [200]
        assert time.monotonic() - started < 2, results
        async with session.get(f"{CONFIGMAPS}?{blanks}") as response:
            body = await response.json()
        assert (body["reason"], body["code"]) == ("BadRequest", 400)
        assert "can't understand" in body["message"]
        for query in ("labelSelector=" + ",".join(f"a{i}%3Db" for i in range(10_000)),  # 10k terms
                      "labelSelector=a+in+(" + ",".join(f"v{i}" for i in range(10_000)) + ")",
                      "labelSelector=" + "a" * 7000 + "!"):
            status, seconds = await status_of(query)
            assert status == 400 and seconds < 1, (query[:40], status, seconds)
    assert server.process.poll() is None


FLOODER_TOKEN = "flooder-token-0123456789"
OTHER_TOKEN = "other-token-0123456789"


@pytest.fixture
def limited_server(tmp_path):
    """A private server with small in-flight limits and two token users bound to cluster-admin (neither is
    in system:masters, which is never limited)."""
    from tests.integration.test_apiserver_kubectl import Server
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f"{FLOODER_TOKEN},flooder,1001\n{OTHER_TOKEN},other,1002\n")
    srv = Server(tmp_path)
    srv.extra_args = ["--token-auth-file", str(tokens), "--max-requests-inflight", "3",
                      "--max-mutating-requests-inflight", "2"]
    srv.start()
    for user in ("flooder", "other"):
        status, body = srv.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{user}-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})
        assert status == 201, body
    yield srv
    srv.stop()


def _token_session(server, token: str, agent: str = "test/1.0") -> aiohttp.ClientSession:
    import ssl
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(ssl=tls, limit=0),
                                 headers={"Authorization": f"Bearer {token}", "User-Agent": agent})


async def test_requests_past_the_inflight_limits_get_429_and_system_masters_still_gets_through(limited_server):
    server = limited_server
    release = asyncio.Event()

    async def trickle():  # a body that keeps its request in flight until released
        yield b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"held'
        await release.wait()
        yield b'"}}'

    async with _token_session(server, FLOODER_TOKEN) as flooder, _session(server) as admin:
        async def post(session, body) -> tuple[int, dict, dict]:
            async with session.post(CONFIGMAPS, data=body, headers={"Content-Type": "application/json"}) as response:
                return response.status, dict(response.headers), await response.json()

        held = [asyncio.create_task(post(flooder, trickle())) for _ in range(2)]
        await asyncio.sleep(1)  # both are being read: the two mutating slots are taken
        status, headers, body = await post(flooder, json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "refused"}}))
        assert (status, body["reason"], body["message"], headers["Retry-After"]) == (
            429, "TooManyRequests", "Too many requests, please try again later.", "1"), body
        async with flooder.get(CONFIGMAPS) as response:  # reads have their own budget
            assert response.status == 200
        status, _, _ = await post(admin, json.dumps(  # system:masters is never limited
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "admin"}}))
        assert status == 201
        release.set()
        finished = await asyncio.gather(*held)
        assert [status for status, _, _ in finished].count(201) == 1  # the same name twice: one 409
        async with admin.get(f"{CONFIGMAPS}/refused") as response:
            assert response.status == 404  # the refused request wrote nothing
        status, _, _ = await post(flooder, json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}))
        assert status == 201  # the slots were given back


async def test_watches_are_capped_per_user_across_connections_and_user_agents(limited_server):
    from apiserver.http.limits import MAX_WATCHES_PER_CLIENT
    server = limited_server
    timeout = aiohttp.ClientTimeout(total=60)
    async with _token_session(server, FLOODER_TOKEN, "flooder-a/1.0") as first, \
            _token_session(server, FLOODER_TOKEN, "flooder-b/2.0") as second, \
            _token_session(server, OTHER_TOKEN) as other:
        responses: list[aiohttp.ClientResponse] = []

        async def open_watch(session) -> int:
            response = await session.get("/api/v1/configmaps?watch=1&timeoutSeconds=60", timeout=timeout)
            responses.append(response)
            return response.status

        try:
            statuses = await asyncio.gather(*(open_watch(first if index % 2 else second)
                                              for index in range(MAX_WATCHES_PER_CLIENT + 10)))
            assert statuses.count(200) == MAX_WATCHES_PER_CLIENT and statuses.count(429) == 10, \
                {s: statuses.count(s) for s in set(statuses)}
            async with other.get("/api/v1/configmaps?watch=1&timeoutSeconds=1") as response:
                assert response.status == 200  # another user is not capped by the flooder's watches
                await response.read()
        finally:
            for response in responses:
                response.close()


async def test_lists_honour_limit_and_continue(server):
    async with _session(server) as session:
        for index in range(7):
            async with session.post(CONFIGMAPS, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                      "metadata": {"name": f"page-{index}"}}) as response:
                assert response.status == 201
        names, token, pages, revisions = [], "", 0, set()
        while True:
            query = f"limit=3&labelSelector=&continue={token}" if token else "limit=3"
            async with session.get(f"{CONFIGMAPS}?{query}") as response:
                body = await response.json()
            pages += 1
            names += [item["metadata"]["name"] for item in body["items"]]
            revisions.add(body["metadata"]["resourceVersion"])
            assert len(body["items"]) <= 3
            token = body["metadata"].get("continue", "")
            if not token:
                break
            assert body["metadata"]["remainingItemCount"] == 7 - len(names) + 1 * ("kube-root-ca.crt" in names)
        assert [n for n in names if n.startswith("page-")] == [f"page-{i}" for i in range(7)]
        assert pages == 3 and len(revisions) == 1
        async with session.get(f"{CONFIGMAPS}?limit=3&continue=not-a-token") as response:
            body = await response.json()
        assert response.status == 400 and body["message"].startswith("continue key is not valid")
    # kubectl pages with limit=500 and follows continue tokens: --chunk-size shows it.
    listed = server.kubectl("get", "configmaps", "--chunk-size=2", "-o", "name").stdout.split()
    assert [name for name in listed if "page-" in name] == [f"configmap/page-{i}" for i in range(7)]


def test_slow_and_silent_connections_are_closed(server):
    import socket
    import ssl
    import threading
    from apiserver.http.limits import HEADER_READ_TIMEOUT, TLS_HANDSHAKE_TIMEOUT
    results: dict[str, float] = {}

    def closed_after(sock, send_slowly: bool) -> float:
        started = time.monotonic()
        sock.settimeout(4)
        request = b"GET /api/v1/namespaces HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
        for index in range(1000):
            if time.monotonic() - started > HEADER_READ_TIMEOUT + 15:
                return float("inf")
            try:
                if send_slowly:
                    sock.send(request[index:index + 1])  # one byte every few seconds: headers never end
                if sock.recv(1024) == b"":
                    return time.monotonic() - started
            except (socket.timeout, ssl.SSLWantReadError):
                continue
            except OSError:
                return time.monotonic() - started
        return float("inf")

    def slowloris() -> None:
        tls = ssl.create_default_context()
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
        with socket.create_connection(("127.0.0.1", server.port)) as raw, \
                tls.wrap_socket(raw, server_hostname="localhost") as sock:
            results["slowloris"] = closed_after(sock, True)

    def silent() -> None:  # TCP connected, never a TLS ClientHello
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            results["silent"] = closed_after(sock, False)

    threads = [threading.Thread(target=target) for target in (slowloris, silent)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results["silent"] <= TLS_HANDSHAKE_TIMEOUT + 5, results
    assert results["slowloris"] <= HEADER_READ_TIMEOUT + 5, results
    assert server.request("GET", "/readyz", raw=True) == "ok"


@pytest.fixture
def few_connections_server(tmp_path):
    from tests.integration.test_apiserver_kubectl import Server
    srv = Server(tmp_path)
    srv.extra_args = ["--max-open-connections", "20"]
    srv.start()
    yield srv
    srv.stop()


def _tls_connection(server):
    import socket
    import ssl
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return tls.wrap_socket(raw, server_hostname="localhost")


def _closed_by_server(sock, wait: float = 3.0) -> bool:
    import ssl
    try:
        sock.settimeout(wait)
        return sock.recv(1) == b""
    except (ssl.SSLError, ConnectionError):
        return True
    except TimeoutError:
        return False


def test_connections_past_the_limit_are_closed_at_once_and_served_again_when_some_go(few_connections_server):
    """--max-open-connections 20: a client holding 20 idle connections makes the server close the 21st at
    once; once it lets some go, new connections are served again."""
    server = few_connections_server
    held = []
    try:
        # /readyz probes of Server.start may still hold a keep-alive connection or two: fill up to the cap.
        while len(held) < 25:
            sock = _tls_connection(server)
            if _closed_by_server(sock, wait=1.0):  # the server closes one past its cap at once
                sock.close()
                break
            held.append(sock)
        assert 18 <= len(held) <= 20, f"{len(held)} connections held before the server closed one"
        extra = _tls_connection(server)
        assert _closed_by_server(extra), "a connection past the limit was kept open"
        extra.close()
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.5)
    assert server.request("GET", "/readyz", raw=True) == "ok"


def test_connections_ending_in_unparseable_requests_do_not_pile_up_in_memory(server):
    """aiohttp refuses a request line over its limit with 400 and leaves the connection as cyclic garbage
    (parser exception, traceback, protocol, TLS buffers). 3000 of them must not grow the server by more than
    a few connections' worth: the server collects after every few hundred closed connections."""
    import ssl
    from tests.security.test_soak import rss_kib

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    async def hammer() -> int:
        refused = 0
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=8, ssl=context)) as session:
            async def one(index: int) -> int:
                async with session.get(f"{server.url}/api/v1/pods?labelSelector={'x' * 9000}{index}") as response:
                    await response.read()
                    return response.status
            for start in range(0, 3000, 100):
                refused += sum(1 for status in await asyncio.gather(*(one(i) for i in range(start, start + 100)))
                               if status == 400)
        return refused

    before = rss_kib(server.process.pid)
    assert asyncio.run(hammer()) == 3000
    grown_mib = (rss_kib(server.process.pid) - before) / 1024
    assert grown_mib < 40, f"RSS grew by {grown_mib:.0f} MiB over 3000 refused connections"


def test_open_tls_connections_hold_little_memory(server):
    """Each open TLS connection reads into a 32 KiB buffer, not asyncio's 256 KiB one: 200 idle connections
    (handshake done) grow the server by well under 100 KiB each (~280 KiB before)."""
    from tests.security.test_soak import rss_kib

    before = rss_kib(server.process.pid)
    held = [_tls_connection(server) for _ in range(200)]
    try:
        time.sleep(0.5)
        per_connection_kib = (rss_kib(server.process.pid) - before) / len(held)
    finally:
        for sock in held:
            sock.close()
    assert per_connection_kib < 100, f"{per_connection_kib:.0f} KiB per open connection"


async def test_rewriting_an_object_keeps_few_decoded_copies_for_watchers(server):
    """Every write's object is decoded once for its watchers (the garbage collector's among them) and kept
    for the next ones within 1 MiB of encoded JSON for the whole server, not 512 copies of each resource:
    300 rewrites of a ~40 KiB ConfigMap of many keys (~250 KiB once decoded) must not leave tens of MB."""
    from tests.security.test_soak import rss_kib

    data = {f"key-{index}": f"value-{index}" for index in range(2000)}
    async with _session(server) as session:
        async with session.post(CONFIGMAPS, json={"metadata": {"name": "rewritten"}, "data": data}) as response:
            assert response.status == 201, await response.text()
        before = rss_kib(server.process.pid)
        for round_ in range(300):
            data["round"] = str(round_)
            async with session.put(f"{CONFIGMAPS}/rewritten",
                                   json={"metadata": {"name": "rewritten"}, "data": data}) as response:
                assert response.status == 200, await response.text()
    grown_mib = (rss_kib(server.process.pid) - before) / 1024
    assert grown_mib < 25, f"RSS grew by {grown_mib:.0f} MiB over 300 rewrites"
