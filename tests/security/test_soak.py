"""Hostile-input soak: one namespace user sends mixed garbage (random bodies, patches, selectors, URLs,
watch storms) at a real `shipmate server` on loopback for SHIPMATE_SOAK_SECONDS (make test: 60 s; the
issue's acceptance run: 600 s). Meanwhile /readyz is probed every 50 ms. The server must stay responsive
(p99 of /readyz under 100 ms), its RSS under 2x what it was before the soak, every object written before
the soak unchanged, and it must never answer 500 (an unexpected exception is a bug, not an answer).

Bounded in count and time: a fixed number of workers, each request with a timeout, every watch closed
after at most a few seconds, the whole run ending at its deadline."""
from __future__ import annotations

import asyncio
import json
import os
import random
import ssl
import string
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_apiserver_kubectl import Server

pytestmark = pytest.mark.integration

SOAK_SECONDS = float(os.environ.get("SHIPMATE_SOAK_SECONDS", "60"))
WORKERS = 8
# Narrowing a soak to some kinds of garbage (indexes into Soak.garbage_worker's actions) helps find what grows.
ACTIONS = [int(a) for a in os.environ.get("SHIPMATE_SOAK_ACTIONS", "0,1,2,3,4,5,6,7").split(",")]
WATCHERS = int(os.environ.get("SHIPMATE_SOAK_WATCHERS", "4"))
REQUEST_TIMEOUT = 10.0
PROBE_INTERVAL = 0.05
TOKEN = "soak-token-0123456789abcdef"
USER = "mallory"
KEPT = 50  # objects written by the admin before the soak, in a namespace the user cannot write
QUOTA = {"pods": 20, "services": 10, "configmaps": 30, "secrets": 20, "count/endpoints": 10, "count/events": 50,
         "count/deployments.apps": 10, "count/replicasets.apps": 10, "count/leases.coordination.k8s.io": 10,
         "count/endpointslices.discovery.k8s.io": 10, "count/roles.rbac.authorization.k8s.io": 10,
         "count/rolebindings.rbac.authorization.k8s.io": 10}

RESOURCES = ["pods", "services", "configmaps", "secrets", "endpoints", "events", "resourcequotas",
             "deployments", "replicasets", "leases", "endpointslices", "roles", "rolebindings"]
PATHS = {"pods": "/api/v1/namespaces/{ns}/pods", "services": "/api/v1/namespaces/{ns}/services",
         "configmaps": "/api/v1/namespaces/{ns}/configmaps", "secrets": "/api/v1/namespaces/{ns}/secrets",
         "endpoints": "/api/v1/namespaces/{ns}/endpoints", "events": "/api/v1/namespaces/{ns}/events",
         "resourcequotas": "/api/v1/namespaces/{ns}/resourcequotas",
         "deployments": "/apis/apps/v1/namespaces/{ns}/deployments",
         "replicasets": "/apis/apps/v1/namespaces/{ns}/replicasets",
         "leases": "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
         "endpointslices": "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
         "roles": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/roles",
         "rolebindings": "/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings"}
PATCH_TYPES = ["application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml"]
KEYS = ["metadata", "spec", "status", "name", "labels", "containers", "image", "ports", "port", "selector",
        "template", "replicas", "data", "subsets", "addresses", "ip", "type", "$patch", "$retainKeys",
        "$setElementOrder/containers", "op", "path", "value", "from", "apiVersion", "kind", "a"]


def random_scalar(rng: random.Random) -> Any:
    return rng.choice([None, True, False, rng.randint(-2**40, 2**40), rng.random() * 1e6,
                       "".join(rng.choices(string.printable, k=rng.randint(0, 20))), "", "0", "-1", "1e308",
                       "127.0.0.1", "\u0000\ud7ff\ufffd"])


def random_json(rng: random.Random, depth: int = 0) -> Any:
    if depth > 6 or rng.random() < 0.3:
        return random_scalar(rng)
    if rng.random() < 0.5:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(KEYS): random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def plausible_object(rng: random.Random, resource: str) -> dict[str, Any]:
    """Mostly valid shapes with random holes: reach validation, not only decoding."""
    name = "s-" + "".join(rng.choices(string.ascii_lowercase + string.digits, k=8))
    body: dict[str, Any] = {"metadata": {"name": name, "labels": {"soak": "yes"}}}
    if resource == "pods":
        body["spec"] = {"containers": [{"name": "c", "image": "busybox", "ports": random_json(rng, 4)}]}
    elif resource == "services":
        body["spec"] = {"ports": [{"port": rng.choice([80, 0, 70000, "http", None])}],
                        "selector": random_json(rng, 5), "type": rng.choice(["ClusterIP", "NodePort", "Bogus"])}
    elif resource in ("configmaps", "secrets"):
        body["data"] = {"k": "".join(rng.choices(string.ascii_letters, k=rng.randint(0, 64)))}
    elif resource == "endpoints":
        body["subsets"] = [{"addresses": [{"ip": rng.choice(["10.1.2.3", "127.0.0.1", "169.254.169.254", "x"])}],
                            "ports": [{"port": 80}]}]
    else:
        body["spec"] = random_json(rng, 3)
    for _ in range(rng.randint(0, 3)):
        where = rng.choice([body, body["metadata"], body.get("spec") or body])
        if isinstance(where, dict):
            where[rng.choice(KEYS)] = random_json(rng, 4)
    return body


def random_selector(rng: random.Random) -> str:
    parts = rng.choices(["a", "b=c", "!d", "e in (f,g)", "h notin (i)", "j!=k", ",", "(", ")", "=", "==",
                         "x" * rng.randint(1, 300), " in (" + ",".join("v%d" % i for i in range(rng.randint(1, 500))) + ")"],
                        k=rng.randint(1, 40))
    return "".join(parts)


def amplifying_json_patch(rng: random.Random) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 4096}}]
    for index in range(rng.randint(10, 200)):
        ops.append({"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/labels/l{index}"})
    return ops


class Soak:
    def __init__(self, server: Server, seed: int) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.deadline = 0.0
        self.statuses: Counter[int] = Counter()
        self.server_errors: list[str] = []
        self.readyz_ms: list[float] = []
        self.rss_kib: list[int] = []
        ctx = ssl.create_default_context(cafile=self._ca_file())
        ctx.check_hostname = False
        self.user_tls = ctx

    def _ca_file(self) -> str:
        return str(Path(self.server.data_dir) / "pki" / "ca.crt")

    def alive(self) -> bool:
        return time.monotonic() < self.deadline

    async def send(self, session: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> None:
        try:
            async with session.request(method, self.server.url + path, ssl=self.user_tls,
                                       timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), **kwargs) as response:
                await response.read()
                self.statuses[response.status] += 1
                if response.status == 500:
                    body = kwargs.get("data") or kwargs.get("json")
                    self.server_errors.append(f"{method} {path} {str(body)[:300]}")
        except (aiohttp.ClientError, asyncio.TimeoutError, UnicodeError, ValueError) as error:
            self.statuses[-1] += 1  # connection refused/closed by a bound: counted, not a failure by itself
            del error

    async def garbage_worker(self, session: aiohttp.ClientSession) -> None:
        rng = random.Random(self.rng.random())
        while self.alive():
            resource = rng.choice(RESOURCES)
            namespace = rng.choice(["soak", "soak", "soak", "keep", "default", "kube-system", "absent"])
            collection = PATHS[resource].format(ns=namespace)
            action = rng.choice(ACTIONS)
            if action == 0:
                await self.send(session, "POST", collection, json=plausible_object(rng, resource))
            elif action == 1:
                await self.send(session, "POST", collection, data=bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 2000))),
                                headers={"Content-Type": rng.choice(["application/json", "application/yaml",
                                                                     "application/vnd.kubernetes.protobuf"])})
            elif action == 2:
                name = rng.choice([f"kept-{rng.randrange(KEPT)}", "victim", "s-missing"])
                patch_type = rng.choice(PATCH_TYPES)
                patch: Any = amplifying_json_patch(rng) if patch_type.startswith("application/json-patch") \
                    and rng.random() < 0.3 else random_json(rng)
                await self.send(session, "PATCH", f"{PATHS['configmaps'].format(ns=namespace)}/{name}",
                                data=json.dumps(patch), headers={"Content-Type": patch_type})
            elif action == 3:
                params = {rng.choice(["labelSelector", "fieldSelector"]): random_selector(rng),
                          "limit": str(rng.choice([1, 0, -1, 500, 10**12]))}
                await self.send(session, "GET", collection, params=params)
            elif action == 4:
                segments = rng.choices(["api", "apis", "v1", "namespaces", "..", "", "%2e%2e", "pods", "x" * 200,
                                        "\u00e9", "~", "proxy", "exec", "status", "watch", "apps", "a.b.c"],
                                       k=rng.randint(1, 12))
                await self.send(session, rng.choice(["GET", "POST", "PUT", "DELETE"]), "/" + "/".join(segments))
            elif action == 5:
                depth = rng.randint(50, 50000)
                nested = '{"metadata": {"name": "deep"}, "spec": ' + "[" * depth + '"x"' + "]" * depth + "}"
                await self.send(session, "POST", collection, data=nested, headers={"Content-Type": "application/json"})
            elif action == 6:
                big = {"metadata": {"name": "big"}, "data": {"k": "y" * rng.choice([10**5, 3 * 10**6, 4 * 10**6])}}
                await self.send(session, "POST", PATHS["configmaps"].format(ns=namespace), json=big)
            else:
                await self.send(session, "DELETE", f"{collection}/kept-{rng.randrange(KEPT)}")

    async def watch_storm(self, session: aiohttp.ClientSession) -> None:
        rng = random.Random(self.rng.random())
        while self.alive():
            path = PATHS[rng.choice(RESOURCES)].format(ns=rng.choice(["soak", "keep", "default"]))
            opened = []
            try:
                for _ in range(rng.randint(1, 40)):
                    response = await session.get(self.server.url + path, params={"watch": "1", "timeoutSeconds": "5"},
                                                 ssl=self.user_tls, timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
                    self.statuses[response.status] += 1
                    if response.status == 500:
                        self.server_errors.append(f"WATCH {path}")
                    opened.append(response)
                await asyncio.sleep(rng.random() * 2)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.statuses[-1] += 1
            finally:
                for response in opened:
                    response.close()

    async def probe_readyz(self) -> None:
        anonymous = ssl.create_default_context(cafile=self._ca_file())
        anonymous.check_hostname = False
        async with aiohttp.ClientSession() as session:
            while self.alive():
                started = time.monotonic()
                try:
                    async with session.get(self.server.url + "/readyz", ssl=anonymous,
                                           timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)) as response:
                        await response.read()
                        ok = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    ok = False
                self.readyz_ms.append((time.monotonic() - started) * 1000 if ok else REQUEST_TIMEOUT * 1000)
                await asyncio.sleep(PROBE_INTERVAL)

    async def sample_rss(self) -> None:
        while self.alive():
            self.rss_kib.append(rss_kib(self.server.process.pid))
            await asyncio.sleep(1)

    async def run(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        headers = {"Authorization": f"Bearer {TOKEN}"}
        connector = aiohttp.TCPConnector(limit=WORKERS + WATCHERS * 40)
        async with aiohttp.ClientSession(headers=headers, connector=connector) as session:
            await asyncio.gather(self.probe_readyz(), self.sample_rss(),
                                 *(self.garbage_worker(session) for _ in range(WORKERS)),
                                 *(self.watch_storm(session) for _ in range(WATCHERS)))


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


@pytest.fixture
def soak_server(tmp_path: Path):
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f'{TOKEN},{USER},{USER}-uid,"soakers"\n')
    server = Server(tmp_path)
    server.extra_args = ["--token-auth-file", str(tokens)]
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kept_objects(server: Server) -> list[dict[str, Any]]:
    status, listing = server.request("GET", "/api/v1/namespaces/keep/configmaps")
    assert status == 200, listing
    return sorted(listing["items"], key=lambda item: item["metadata"]["name"])


def test_hostile_input_soak(soak_server: Server) -> None:
    server = soak_server
    server.kubectl("create", "namespace", "keep")
    server.kubectl("create", "namespace", "soak")
    server.kubectl("create", "rolebinding", "mallory-edit", "--clusterrole=edit", f"--user={USER}", "-n", "soak")
    # What a namespace user may store is bounded by the namespace's quota, as upstream: the soak is about what
    # the server holds for requests, not about objects an admin let the user keep.
    server.kubectl("create", "quota", "soak", "-n", "soak", "--hard=" + ",".join(f"{name}={count}" for name, count in QUOTA.items()))
    for index in range(KEPT):
        status, _ = server.request("POST", "/api/v1/namespaces/keep/configmaps",
                                   {"metadata": {"name": f"kept-{index}"}, "data": {"i": str(index)}})
        assert status == 201
    status, _ = server.request("POST", "/api/v1/namespaces/soak/configmaps", {"metadata": {"name": "victim"}})
    assert status == 201
    before = kept_objects(server)
    start_rss = rss_kib(server.process.pid)

    soak = Soak(server, seed=int(os.environ.get("SHIPMATE_SOAK_SEED", "1")))
    asyncio.run(soak.run(SOAK_SECONDS))

    report = (f"{sum(soak.statuses.values())} requests in {SOAK_SECONDS:.0f} s, statuses {dict(soak.statuses)}; "
              f"/readyz p50 {percentile(soak.readyz_ms, 0.5):.1f} ms p99 {percentile(soak.readyz_ms, 0.99):.1f} ms "
              f"({len(soak.readyz_ms)} probes); RSS {start_rss} KiB before, max {max(soak.rss_kib)} KiB, "
              f"every minute {soak.rss_kib[::60]}")
    print(report)
    assert server.process.poll() is None, "the server died during the soak"
    assert not soak.server_errors, f"500s: {soak.server_errors[:20]}\n{report}"
    assert percentile(soak.readyz_ms, 0.99) < 100, report
    assert max(soak.rss_kib) < 2 * start_rss, report
    assert kept_objects(server) == before, "an object written before the soak changed"
    assert server.request("GET", "/readyz", raw=True) == "ok"
