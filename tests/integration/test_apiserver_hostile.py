"""Hostile input against a real `shipmate server` (own port and data dir): oversize bodies, deep nesting, YAML
bombs, a watch flood from one client while others are still answered, kubectl's --validate modes."""
from __future__ import annotations

import asyncio
import json
import shutil
import time

import aiohttp
import pytest

from apiserver.http.limits import MAX_REQUEST_BODY_BYTES, MAX_WATCHES_PER_CLIENT

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

CONFIGMAPS = "/api/v1/namespaces/default/configmaps"


async def _send(session: aiohttp.ClientSession, method: str, url: str, data, content_type: str):
    async with session.request(method, url, data=data, headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


async def test_oversize_deep_and_bomb_bodies_get_clean_statuses_and_the_server_stays_up(server):
    big = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                      "data": {"k": "x" * MAX_REQUEST_BODY_BYTES}}).encode()
    deep = ('{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"deep"},"data":' + '{"a":' * 20000 + '"x"'
            + "}" * 20001).encode()
    bomb = "\n".join(["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "a: &a [x,x,x,x,x,x,x,x,x,x]"]
                     + [f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]"
                        for i in range(9)]).encode()
    async with aiohttp.ClientSession(server.url, connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as session:
        status, body = await _send(session, "POST", CONFIGMAPS, big, "application/json")
        assert (status, body["reason"], body["message"]) == (413, "RequestEntityTooLarge",
                                                            "Request entity too large: limit is 3145728")
        assert body["kind"] == "Status" and body["code"] == 413

        async def chunked():  # no Content-Length: refused while reading
            for offset in range(0, len(big), 65536):
                yield big[offset:offset + 65536]
        status, body = await _send(session, "POST", CONFIGMAPS, chunked(), "application/json")
        assert status == 413

        status, _ = await _send(session, "POST", CONFIGMAPS, json.dumps(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "small"}}), "application/json")
        assert status == 201
        for content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            status, body = await _send(session, "PATCH", f"{CONFIGMAPS}/small", big, content_type)
            assert status == 413, body
        status, body = await _send(session, "PUT", f"{CONFIGMAPS}/small", big, "application/json")
        assert status == 413

        status, body = await _send(session, "POST", CONFIGMAPS, deep, "application/json")
        assert (status, body["message"]) == (400, "error decoding request body: exceeded max depth")
        status, body = await _send(session, "PATCH", f"{CONFIGMAPS}/small", deep, "application/merge-patch+json")
        assert status == 400
        started = time.monotonic()
        status, body = await _send(session, "POST", CONFIGMAPS, bomb, "application/yaml")
        assert status == 400 and "excessive aliasing" in body["message"]
        assert time.monotonic() - started < 2
        status, body = await _send(session, "POST", CONFIGMAPS, b"[1, 2]", "application/json")
        assert status == 400 and "cannot unmarshal array" in body["message"]

        # JSON patch growing an object deeper on every request stops at the nesting limit (422), never a 500.
        step = {}
        node = step
        for _ in range(90):
            node["a"] = {}
            node = node["a"]
        statuses = []
        path = "/data2"
        for _ in range(3):
            statuses.append((await _send(session, "PATCH", f"{CONFIGMAPS}/small",
                                         json.dumps([{"op": "add", "path": path, "value": step}]),
                                         "application/json-patch+json"))[0])
            path += "/a" * 90
        assert statuses[0] == 200 and 422 in statuses and 500 not in statuses, statuses

        async with session.get(f"{CONFIGMAPS}/small") as response:
            assert response.status == 200
    assert server.process.poll() is None


async def test_a_watch_flood_from_one_client_is_capped_and_others_are_still_answered(server):
    flood = MAX_WATCHES_PER_CLIENT + 50
    connector = aiohttp.TCPConnector(limit=0, ssl=server.ssl_context())
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(server.url, connector=connector, timeout=timeout,
                                     headers={"User-Agent": "flooder/1.0"}) as flooder, \
            aiohttp.ClientSession(server.url, headers={"User-Agent": "kubectl/v1.35.0"},
                                  connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as other:
        responses: list[aiohttp.ClientResponse] = []

        async def open_watch() -> int:
            response = await flooder.get("/api/v1/configmaps?watch=1&timeoutSeconds=60")
            responses.append(response)
            return response.status

        statuses = await asyncio.gather(*(open_watch() for _ in range(flood)))
        try:
            assert statuses.count(200) == MAX_WATCHES_PER_CLIENT and statuses.count(429) == 50, \
                {s: statuses.count(s) for s in set(statuses)}
            refused = next(r for r in responses if r.status == 429)
            assert refused.headers["Retry-After"] == "1"
            assert (await refused.json())["reason"] == "TooManyRequests"
            # The flooding client's watches are all open: another client is still served, quickly.
            for _ in range(5):
                started = time.monotonic()
                async with other.get("/api/v1/namespaces/default") as response:
                    assert response.status == 200
                assert time.monotonic() - started < 1
            async with other.get("/api/v1/configmaps?watch=1&timeoutSeconds=1") as response:
                assert response.status == 429  # the same user (admin) with another User-Agent: capped per user
            # Events still flow to the flood's watchers.
            async with other.post(CONFIGMAPS, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                    "metadata": {"name": "during-flood"}}) as response:
                assert response.status == 201
            watch = next(r for r in responses if r.status == 200)

            async def names_until_ours() -> list[str]:
                seen: list[str] = []  # the namespaces' kube-root-ca.crt come first (ADDED of what exists)
                while "during-flood" not in seen:
                    seen.append(json.loads(await watch.content.readline())["object"]["metadata"]["name"])
                return seen
            assert (await asyncio.wait_for(names_until_ours(), 5))[-1] == "during-flood"
        finally:
            for response in responses:
                response.close()
        # Closed watches give their slots back.
        deadline = time.monotonic() + 10
        while True:
            async with flooder.get("/api/v1/configmaps?watch=1&timeoutSeconds=1") as response:
                if response.status == 200:
                    await response.read()
                    break
            assert time.monotonic() < deadline, "watch slots were not released"
            await asyncio.sleep(0.2)
    assert server.process.poll() is None


MANIFEST = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
  bogus: 1
data:
  a: b
spec:
  foo: 1
"""


def test_kubectl_validate_strict_refuses_unknown_fields_and_warn_warns(server):
    strict = server.kubectl("apply", "--validate=strict", "-f", "-", input=MANIFEST.format(name="strict"),
                            check=False)
    assert strict.returncode != 0
    assert 'strict decoding error: unknown field "metadata.bogus", unknown field "spec"' in strict.stderr
    default = server.kubectl("apply", "-f", "-", input=MANIFEST.format(name="default"), check=False)
    assert default.returncode != 0 and "strict decoding error" in default.stderr  # kubectl 1.35 defaults to strict
    warned = server.kubectl("apply", "--validate=warn", "-f", "-", input=MANIFEST.format(name="warned"))
    assert 'unknown field "metadata.bogus"' in warned.stderr and 'unknown field "spec"' in warned.stderr
    ignored = server.kubectl("apply", "--validate=false", "-f", "-", input=MANIFEST.format(name="ignored"))
    assert "unknown field" not in ignored.stderr
    assert server.kubectl("get", "configmap", "strict", check=False).returncode != 0
    assert server.kubectl("get", "configmap", "warned", "-o", "jsonpath={.data.a}").stdout == "b"
