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
