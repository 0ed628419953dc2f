"""Datastore benchmark (issue 6): API rates against the raw store, on SQLite and on etcd.

For each backend a real `shipmate server` (spare loopback port, temp dir; etcd: a single member
started here on spare ports, fsync on) serves N ConfigMaps created, updated and read by C
concurrent HTTPS clients; a watch from before the burst replays its N events; list = full lists of all N.
Every request carries the admin kubeconfig's client certificate, so the server authenticates and
authorizes each one. Creates, updates and gets go over C keep-alive connections opened before timing,
through a minimal HTTP/1.1 client (the load generator shares the two cores with the server and store).
Baselines, same writes, same concurrency, in-process:
  raw store      sqlite: plain sqlite3 INSERTs, one per transaction, WAL + synchronous=FULL (the
                 server's setting), C threads with connections opened before timing; etcd: Put RPCs
                 (`etcdctl put`) through the backend's own grpc.aio client and channel
  storage layer  our backend class without HTTP/registry (SQLiteStorage with its group commit,
                 EtcdStorage with its Txn writes and watch cache): where the API's own cost shows
Prints one line per backend and operation, and last the SQLite create ratio API / raw store
(target ≥ 0.5 on both backends). With SHIPMATE_BENCH_JSON set (bench/report.py) it also writes the
create ratio of each backend.

    /opt/shipmate/venv/bin/python bench/datastore.py [--objects 2000] [--concurrency 64]
        [--backends sqlite,etcd] [--json FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from result import Figure, write_result  # noqa: E402  (bench/ is the script's directory)
from apiserver.storage.etcd import EtcdStorage, parse_etcd_endpoint  # noqa: E402
from apiserver.storage.etcd_gen import rpc_pb2  # noqa: E402
from apiserver.storage.sqlite import SQLiteStorage  # noqa: E402
from shipmate.kubeclient import KubeConfig, load_kubeconfig  # noqa: E402
from tests.integration.etcd_support import EtcdCluster, etcd_available, spare_ports  # noqa: E402
NAMESPACE = "default"


@dataclass
class Rates:
    create: float = 0.0
    update: float = 0.0
    get: float = 0.0
    list_items: float = 0.0  # objects per second returned by full lists
    watch_events: float = 0.0


def _configmap(i: int, generation: int = 0) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"cm-{i:05}", "namespace": NAMESPACE, "labels": {"bench": "datastore"}},
            "data": {"payload": f"{generation}-" + "x" * 200}}


async def _run_concurrently(count: int, concurrency: int, job) -> float:
    """Run job(i) for i in range(count) on `concurrency` workers; returns operations per second."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)

    async def worker() -> None:
        while not queue.empty():
            await job(queue.get_nowait())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return count / (time.perf_counter() - start)


# --- through the API ----------------------------------------------------------------------------
def _start_server(workdir: Path, extra: list[str]) -> tuple[subprocess.Popen, Path]:
    """A server on a spare port; returns it and the admin kubeconfig it writes once it serves."""
    port = spare_ports(1)[0]
    kubeconfig = workdir / "admin.kubeconfig"
    log = open(workdir / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "shipmate.cli", "server", "--bind-address", "127.0.0.1", "--port", str(port),
         "--data-dir", str(workdir / "data"), "--admin-kubeconfig", str(kubeconfig),
         "--log-level", "WARNING", *extra], cwd=REPO, stdout=log, stderr=log)
    log.close()
    return process, kubeconfig


def _wait_kubeconfig(path: Path, process: subprocess.Popen) -> KubeConfig:
    """The admin kubeconfig (URL, CA, admin client certificate), written after the server starts serving."""
    deadline = time.monotonic() + 60
    while not path.exists():
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError("server wrote no admin kubeconfig after 60 s")
        time.sleep(0.1)
    return load_kubeconfig(str(path))


async def _wait_ready(session: aiohttp.ClientSession, url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            async with session.get(f"{url}/readyz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("server not ready after 30 s")


class _Connections:
    """Keep-alive HTTP/1.1 connections with the admin kubeconfig's TLS identity, one request at a time on
    each: a minimal client (a request line, headers, a Content-Length body), so the load generator takes
    less of the two cores the server and the store share (aiohttp's client costs twice its CPU)."""

    def __init__(self, config: KubeConfig):
        url = urlsplit(config.server)
        self._host, self._port, self._netloc = url.hostname, url.port, url.netloc
        self._ssl = config.ssl_context()
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        self._all: list[asyncio.StreamWriter] = []

    async def open(self, count: int) -> None:
        for _ in range(count):
            reader, writer = await asyncio.open_connection(self._host, self._port, ssl=self._ssl)
            self._all.append(writer)
            self._idle.put_nowait((reader, writer))

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        payload = json.dumps(body).encode() if body is not None else b""
        reader, writer = await self._idle.get()
        writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self._netloc}\r\nAccept: application/json\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload)
        status = int((await reader.readline()).split()[1])
        length = None
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise RuntimeError(f"{method} {path}: HTTP {status} without Content-Length")
        data = await reader.readexactly(length)
        self._idle.put_nowait((reader, writer))
        return status, data

    async def close(self) -> None:
        for writer in self._all:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in self._all), return_exceptions=True)


async def _api_rates(config: KubeConfig, count: int, concurrency: int, process: subprocess.Popen) -> Rates:
    """Every request over the admin kubeconfig's connection: HTTPS with the admin client certificate, so
    the server authenticates and authorizes each one. Creates, updates and gets on `concurrency` keep-alive
    connections opened (TLS handshakes) before timing, as the raw stores write on open connections."""
    rates = Rates()
    url = config.server
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    base = f"{url}{path}"
    connector = aiohttp.TCPConnector(limit=4, ssl=config.ssl_context() or False)
    connections = _Connections(config)
    async with aiohttp.ClientSession(connector=connector) as session:
        await _wait_ready(session, url, process)
        await connections.open(concurrency)
        async with session.get(base) as response:
            before = (await response.json())["metadata"]["resourceVersion"]
        stored: dict[int, dict] = {}

        async def create(i: int) -> None:
            status, data = await connections.request("POST", path, _configmap(i))
            if status != 201:
                raise RuntimeError(f"create {i}: HTTP {status} {data[:300]!r}")
            stored[i] = json.loads(data)

        async def update(i: int) -> None:
            body = _configmap(i, 1)
            body["metadata"]["resourceVersion"] = stored[i]["metadata"]["resourceVersion"]
            status, data = await connections.request("PUT", f"{path}/cm-{i:05}", body)
            if status != 200:
                raise RuntimeError(f"update {i}: HTTP {status} {data[:300]!r}")

        async def get(i: int) -> None:
            status, data = await connections.request("GET", f"{path}/cm-{i:05}")
            if status != 200 or json.loads(data)["metadata"]["name"] != f"cm-{i:05}":
                raise RuntimeError(f"get {i}: HTTP {status} {data[:300]!r}")

        async def full_list(_: int) -> None:
            async with session.get(f"{base}?labelSelector=bench%3Ddatastore") as response:
                items = (await response.json())["items"]
                if len(items) != count:
                    raise RuntimeError(f"list returned {len(items)} of {count}")

        try:
            rates.create = await _run_concurrently(count, concurrency, create)
            rates.watch_events = await _api_watch_replay(session, f"{base}?watch=1&resourceVersion={before}", count)
            rates.update = await _run_concurrently(count, concurrency, update)
            rates.get = await _run_concurrently(count, concurrency, get)
            lists = 10
            rates.list_items = await _run_concurrently(lists, 2, full_list) * count
        finally:
            await connections.close()
    return rates


async def _api_watch_replay(session: aiohttp.ClientSession, url: str, count: int) -> float:
    """Events per second of a watch replaying `count` ADDED events from the server's history."""
    received = 0
    start = time.perf_counter()
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=300)) as response:
        async for line in response.content:
            if line.strip() and json.loads(line)["type"] == "ADDED":
                received += 1
                if received == count:
                    return count / (time.perf_counter() - start)
    raise RuntimeError(f"watch ended after {received} of {count} events")


async def _through_api(workdir: Path, extra: list[str], count: int, concurrency: int) -> Rates:
    process, kubeconfig = _start_server(workdir, extra)
    try:
        config = await asyncio.to_thread(_wait_kubeconfig, kubeconfig, process)
        return await _api_rates(config, count, concurrency, process)
    finally:
        process.terminate()
        process.wait(15)


# --- raw stores ---------------------------------------------------------------------------------
def _value(i: int, generation: int = 0) -> bytes:
    return json.dumps(_configmap(i, generation)).encode()


def _key(i: int) -> str:
    return f"/registry/configmaps/{NAMESPACE}/cm-{i:05}"


async def _storage_rates(store, count: int, concurrency: int) -> Rates:
    """The same writes through a Storage backend in-process: create, update, get, list, watch."""
    rates = Rates()
    await store.start()
    try:
        _, before = await store.list("/registry/configmaps/")
        revisions: dict[int, int] = {}

        async def create(i: int) -> None:
            revisions[i] = (await store.create(_key(i), _value(i))).mod_revision

        async def update(i: int) -> None:
            await store.update(_key(i), _value(i, 1), revisions[i])

        async def get(i: int) -> None:
            await store.get(_key(i))

        async def full_list(_: int) -> None:
            await store.list(f"/registry/configmaps/{NAMESPACE}/")

        rates.create = await _run_concurrently(count, concurrency, create)
        rates.watch_events = await _storage_watch_replay(store, before, max(revisions.values()), count)
        rates.update = await _run_concurrently(count, concurrency, update)
        rates.get = await _run_concurrently(count, concurrency, get)
        rates.list_items = await _run_concurrently(10, 2, full_list) * count
    finally:
        await store.close()
    return rates


async def _storage_watch_replay(store, before: int, last: int, count: int) -> float:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while store.revision < last:  # etcd publishes through its watch stream
        if loop.time() > deadline:
            raise RuntimeError(f"storage did not publish revision {last}")
        await asyncio.sleep(0.01)
    start = time.perf_counter()
    watch = store.watch("/registry/configmaps/", before)
    try:
        for _ in range(count):
            if await watch.next(10) is None:
                raise RuntimeError("storage watch stalled")
    finally:
        watch.stop()
    return count / (time.perf_counter() - start)


def _sqlite_inserts(path: str, count: int, concurrency: int) -> float:
    """The raw store: plain sqlite3 INSERTs, one per transaction, WAL + synchronous=FULL (the server's
    sync setting), from `concurrency` threads with their own connections (SQLite serializes them)."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,"
                  " mod_revision INTEGER NOT NULL) WITHOUT ROWID")
    setup.close()
    indices = iter(range(count))
    lock = threading.Lock()

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    def worker(conn: sqlite3.Connection) -> None:
        while True:
            with lock:
                i = next(indices, None)
            if i is None:
                break
            conn.execute("INSERT INTO kv VALUES(?,?,?,?)", (_key(i), _value(i), i + 1, i + 1))

    connections = [connect() for _ in range(concurrency)]  # open before timing, as the API's connections
    try:
        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for future in [pool.submit(worker, conn) for conn in connections]:
                future.result()
        return count / (time.perf_counter() - start)
    finally:
        for conn in connections:
            conn.close()


async def _raw_etcd_puts(store: EtcdStorage, count: int, concurrency: int) -> float:
    """Plain Put RPCs (`etcdctl put` equivalent) through the backend's own client and channel."""
    await store.start()
    try:
        async def put(i: int) -> None:
            await store._call("Put", rpc_pb2.PutRequest(key=f"/registry/raw/{i:05}".encode(), value=_value(i)))
        return await _run_concurrently(count, concurrency, put)
    finally:
        await store.close()


# --- report -------------------------------------------------------------------------------------
def _line(backend: str, what: str, api: float, baseline: float, name: str) -> str:
    return f"{backend:6} {what:13} api {api:8.0f}/s   {name:13} {baseline:8.0f}/s   ratio {api / baseline:5.2f}"


async def main_async(options: argparse.Namespace) -> dict:
    results: dict[str, dict] = {}
    backends = options.backends.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-datastore-") as tmp:
        root = Path(tmp)
        if "sqlite" in backends:
            (root / "sqlite-api").mkdir()
            api = await _through_api(root / "sqlite-api", [], options.objects, options.concurrency)
            raw = await _storage_rates(SQLiteStorage(str(root / "raw.db")), options.objects, options.concurrency)
            inserts = await asyncio.to_thread(_sqlite_inserts, str(root / "inserts.db"), options.objects,
                                              options.concurrency)
            results["sqlite"] = {"api": asdict(api), "storage_layer": asdict(raw), "raw_insert": inserts}
        if "etcd" in backends:
            if not etcd_available():
                raise SystemExit("etcd not installed: apt-get install etcd-server etcd-client")
            (root / "etcd").mkdir()
            cluster = EtcdCluster(root / "etcd", size=1).start()
            try:
                (root / "etcd-api").mkdir()
                api = await _through_api(root / "etcd-api", ["--datastore-endpoint", cluster.endpoint],
                                         options.objects, options.concurrency)
                cluster.etcdctl("del", "/registry/configmaps/", "--prefix")
                options_etcd = parse_etcd_endpoint(cluster.endpoint)
                raw = await _storage_rates(EtcdStorage(options_etcd, compaction_interval=0), options.objects,
                                           options.concurrency)
                puts = await _raw_etcd_puts(EtcdStorage(options_etcd, compaction_interval=0), options.objects,
                                            options.concurrency)
            finally:
                cluster.stop()
            results["etcd"] = {"api": asdict(api), "storage_layer": asdict(raw), "raw_put": puts}
    return results


def report(results: dict, objects: int, concurrency: int) -> list[str]:
    """`storage layer` = our backend class in-process (no HTTP/registry); `raw` = the bare store."""
    lines = [f"{objects} ConfigMaps (~330 B), {concurrency} concurrent clients"]
    for backend in ("etcd", "sqlite"):
        if backend not in results:
            continue
        api, layer = results[backend]["api"], results[backend]["storage_layer"]
        for what in ("create", "update", "get", "list_items", "watch_events"):
            lines.append(_line(backend, what, api[what], layer[what], "storage layer"))
        raw_name, raw = (("raw put", results[backend]["raw_put"]) if backend == "etcd"
                         else ("raw insert", results[backend]["raw_insert"]))
        lines.append(_line(backend, "create", api["create"], raw, raw_name))
    if "sqlite" in results:
        sqlite = results["sqlite"]
        lines.append(f"SQLite create ratio (API / raw sqlite3 inserts, synchronous=FULL): "
                     f"{sqlite['api']['create'] / sqlite['raw_insert']:.2f}")
    return lines


def figures(results: dict) -> list[Figure]:
    """The create ratio per backend for bench/report.py (`make bench`)."""
    rows = []
    for backend, name, raw_key, raw_label in (("sqlite", "SQLite", "raw_insert", "raw sqlite3 inserts"),
                                              ("etcd", "etcd", "raw_put", "raw etcd puts")):
        if backend in results:
            rows.append(Figure(f"{name} API create (HTTPS, client cert) vs {raw_label}",
                               results[backend]["api"]["create"], results[backend][raw_key], "/s", "≥ 0.5",
                               baseline_label=raw_label))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    options = parser.parse_args(argv)
    results = asyncio.run(main_async(options))
    write_result("datastore", figures(results),
                 notes=f"{options.objects} ConfigMaps, {options.concurrency} concurrent clients")
    for line in report(results, options.objects, options.concurrency):
        print(line)
    if options.json:
        with open(options.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
