"""Datastore benchmark (issue 6): API rates against the raw store, on SQLite and on etcd.

For each backend a real `shipmate server` (spare loopback port, temp dir; etcd: a single member
started here on spare ports, fsync on) serves N ConfigMaps created, updated and read by C
concurrent HTTPS clients; a watch from before the burst replays its N events; list = full lists of all N.
Every request carries the admin kubeconfig's client certificate, so the server authenticates and
authorizes each one. Creates, updates, gets and lists go over keep-alive connections opened before timing,
through a minimal HTTP/1.1 client (the load generator shares the two cores with the server and store).
Floors, same writes, same concurrency (C clients), in-process:
  storage layer  our backend class without HTTP/registry (SQLiteStorage with its group commit,
                 EtcdStorage with its Txn writes and watch cache): the floor of every API figure, per
                 operation (create, update, get, list, watch)
  raw store      sqlite: a bare loop that batches the same way as the group commit (C clients queue
                 INSERTs to one writer thread, which applies all pending ones in one transaction,
                 WAL + synchronous=FULL), so the storage layer's own cost shows against it; etcd: Put
                 RPCs (`etcdctl put`) through the backend's own grpc.aio client and channel
Targets: SQLite API creates ≥ 0.15 × the storage layer; etcd API creates ≥ 0.8 × raw etcd puts; API gets
and lists ≥ 0.25 × the storage layer (both backends). With --rounds N (default 3) every rate is measured N
times, alternating API, storage layer and raw store, and the medians are compared (spread in the notes).
Prints one line per backend and operation, and last the SQLite create ratio API / storage layer.

    /opt/shipmate/venv/bin/python bench/datastore.py [--objects 2000] [--concurrency 64]
        [--backends sqlite,etcd] [--rounds 3] [--json FILE]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson

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
    less of the two cores the server and the store share (aiohttp's client costs twice its CPU). Responses
    are checked with orjson (the server's own codec): the stdlib's decoder took 10-15 ms of a 1.5 MB list."""

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
        payload = orjson.dumps(body) if body is not None else b""
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
            stored[i] = orjson.loads(data)

        async def update(i: int) -> None:
            body = _configmap(i, 1)
            body["metadata"]["resourceVersion"] = stored[i]["metadata"]["resourceVersion"]
            status, data = await connections.request("PUT", f"{path}/cm-{i:05}", body)
            if status != 200:
                raise RuntimeError(f"update {i}: HTTP {status} {data[:300]!r}")

        async def get(i: int) -> None:
            status, data = await connections.request("GET", f"{path}/cm-{i:05}")
            if status != 200 or orjson.loads(data)["metadata"]["name"] != f"cm-{i:05}":
                raise RuntimeError(f"get {i}: HTTP {status} {data[:300]!r}")

        async def full_list(_: int) -> None:
            status, data = await connections.request("GET", f"{path}?labelSelector=bench%3Ddatastore")
            items = orjson.loads(data)["items"] if status == 200 else []
            if len(items) != count:
                raise RuntimeError(f"list returned HTTP {status}, {len(items)} of {count} items")

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
            if line.strip() and orjson.loads(line)["type"] == "ADDED":
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


async def _sqlite_batched_inserts(path: str, count: int, concurrency: int) -> float:
    """The raw store, batched as the group commit batches: `concurrency` clients (asyncio tasks) queue plain
    INSERTs to one writer thread, which applies every pending one in one transaction (WAL +
    synchronous=FULL, the server's settings) and completes the clients' futures; no revisions, events,
    history or error handling."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE kv (key TEXT PRIMARY KEY, value BLOB NOT NULL, create_revision INTEGER NOT NULL,"
                  " mod_revision INTEGER NOT NULL) WITHOUT ROWID")
    setup.close()
    loop = asyncio.get_running_loop()
    pending: queue.SimpleQueue = queue.SimpleQueue()

    def writer() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=FULL")
        revision = 0
        while True:
            first = pending.get()
            if first is None:
                conn.close()
                return
            batch = [first]
            while len(batch) < 512:
                try:
                    item = pending.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    pending.put(None)
                    break
                batch.append(item)
            conn.execute("BEGIN IMMEDIATE")
            for key, value, _ in batch:
                revision += 1
                conn.execute("INSERT INTO kv VALUES(?,?,?,?)", (key, value, revision, revision))
            conn.execute("COMMIT")
            loop.call_soon_threadsafe(_resolve, [future for _, _, future in batch])

    def _resolve(futures: list) -> None:
        for future in futures:
            future.set_result(None)

    thread = threading.Thread(target=writer, name="raw-sqlite-write", daemon=True)
    thread.start()
    try:
        async def insert(i: int) -> None:
            future = loop.create_future()
            pending.put((_key(i), _value(i), future))
            await future
        return await _run_concurrently(count, concurrency, insert)
    finally:
        pending.put(None)
        await asyncio.to_thread(thread.join)


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
OPS = ("create", "update", "get", "list_items", "watch_events")
OP_LABELS = {"create": "create", "update": "update", "get": "get", "list_items": "list (objects)",
             "watch_events": "watch (events)"}
# Targets against the storage layer (both backends) and, for etcd creates, against raw puts.
LAYER_TARGETS = {("sqlite", "create"): "≥ 0.15", ("sqlite", "get"): "≥ 0.25", ("sqlite", "list_items"): "≥ 0.25",
                 ("etcd", "get"): "≥ 0.25", ("etcd", "list_items"): "≥ 0.25"}
RAW_TARGETS = {"etcd": "≥ 0.8"}


def _line(backend: str, what: str, api: float, baseline: float, name: str) -> str:
    return f"{backend:6} {what:13} api {api:8.0f}/s   {name:13} {baseline:8.0f}/s   ratio {api / baseline:5.2f}"


async def one_round(options: argparse.Namespace, root: Path, cluster) -> dict:
    """One measurement of every rate: API, storage layer, raw store, per backend (fresh dirs / keys)."""
    results: dict[str, dict] = {}
    backends = options.backends.split(",")
    if "sqlite" in backends:
        (root / "sqlite-api").mkdir()
        api = await _through_api(root / "sqlite-api", [], options.objects, options.concurrency)
        layer = await _storage_rates(SQLiteStorage(str(root / "layer.db")), options.objects, options.concurrency)
        raw = await _sqlite_batched_inserts(str(root / "raw.db"), options.objects, options.concurrency)
        results["sqlite"] = {"api": asdict(api), "storage_layer": asdict(layer), "raw": raw}
    if "etcd" in backends:
        (root / "etcd-api").mkdir()
        cluster.etcdctl("del", "/", "--prefix")
        api = await _through_api(root / "etcd-api", ["--datastore-endpoint", cluster.endpoint],
                                 options.objects, options.concurrency)
        cluster.etcdctl("del", "/", "--prefix")
        options_etcd = parse_etcd_endpoint(cluster.endpoint)
        layer = await _storage_rates(EtcdStorage(options_etcd, compaction_interval=0), options.objects,
                                     options.concurrency)
        puts = await _raw_etcd_puts(EtcdStorage(options_etcd, compaction_interval=0), options.objects,
                                    options.concurrency)
        results["etcd"] = {"api": asdict(api), "storage_layer": asdict(layer), "raw": puts}
    return results


async def main_async(options: argparse.Namespace) -> list[dict]:
    rounds = []
    backends = options.backends.split(",")
    if "etcd" in backends and not etcd_available():
        raise SystemExit("etcd not installed: apt-get install etcd-server etcd-client")
    with tempfile.TemporaryDirectory(prefix="bench-datastore-") as tmp:
        cluster = None
        if "etcd" in backends:
            (Path(tmp) / "etcd").mkdir()
            cluster = EtcdCluster(Path(tmp) / "etcd", size=1).start()
        try:
            for n in range(options.rounds):
                root = Path(tmp) / f"round{n}"
                root.mkdir()
                rounds.append(await one_round(options, root, cluster))
                for line in report([rounds[-1]], options.objects, options.concurrency, header=f"round {n}"):
                    print(line, flush=True)
        finally:
            if cluster:
                cluster.stop()
    return rounds


def _ratios(rounds: list[dict], backend: str, op: str, against: str) -> list[float]:
    out = []
    for r in rounds:
        if backend in r:
            base = r[backend]["storage_layer"][op] if against == "layer" else r[backend]["raw"]
            out.append(r[backend]["api"][op] / base)
    return out


def _median(rounds: list[dict], backend: str, path: tuple[str, ...]) -> float:
    values = []
    for r in rounds:
        value = r[backend]
        for key in path:
            value = value[key]
        values.append(value)
    return statistics.median(values)


def report(rounds: list[dict], objects: int, concurrency: int, header: str = "median") -> list[str]:
    """Medians over rounds: API against the storage layer per operation, creates against the raw store."""
    lines = [f"{header}: {objects} ConfigMaps (~330 B), {concurrency} concurrent clients"]
    for backend in ("etcd", "sqlite"):
        if backend not in rounds[0]:
            continue
        for op in OPS:
            lines.append(_line(backend, op, _median(rounds, backend, ("api", op)),
                               _median(rounds, backend, ("storage_layer", op)), "storage layer"))
        raw_name = "raw put" if backend == "etcd" else "raw batched"
        lines.append(_line(backend, "create", _median(rounds, backend, ("api", "create")),
                           _median(rounds, backend, ("raw",)), raw_name))
        lines.append(_line(backend, "layer create", _median(rounds, backend, ("storage_layer", "create")),
                           _median(rounds, backend, ("raw",)), raw_name))
    if "sqlite" in rounds[0]:
        lines.append(f"SQLite create ratio (API / storage layer, group commit): "
                     f"{statistics.median(_ratios(rounds, 'sqlite', 'create', 'layer')):.2f}")
    return lines


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f}–{max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def figures(rounds: list[dict]) -> tuple[list[Figure], str]:
    """Per backend and operation, API against the storage layer (medians over rounds), and creates
    against the raw store; the notes carry each ratio's spread and the per-round table."""
    rows, notes = [], ["| backend | op | API /s | storage layer /s | API / layer (rounds) | raw store /s |",
                       "| --- | --- | --- | --- | --- | --- |"]
    for backend, name in (("sqlite", "SQLite"), ("etcd", "etcd")):
        if backend not in rounds[0]:
            continue
        for op in OPS:
            api, layer = _median(rounds, backend, ("api", op)), _median(rounds, backend, ("storage_layer", op))
            ratios = _ratios(rounds, backend, op, "layer")
            rows.append(Figure(f"{name} API {OP_LABELS[op]} vs our storage layer", api, layer, "/s",
                               LAYER_TARGETS.get((backend, op), ""), ratio=statistics.median(ratios),
                               baseline_label="storage layer"))
            raw = f"{_median(rounds, backend, ('raw',)):.0f}" if op == "create" else ""
            notes.append(f"| {backend} | {OP_LABELS[op]} | {api:.0f} | {layer:.0f} | "
                         f"{statistics.median(ratios):.2f} ({_spread(ratios)}) | {raw} |")
        raw_label = "raw etcd puts" if backend == "etcd" else "raw batched sqlite3 inserts"
        raw_ratios = _ratios(rounds, backend, "create", "raw")
        rows.append(Figure(f"{name} API create vs {raw_label}", _median(rounds, backend, ("api", "create")),
                           _median(rounds, backend, ("raw",)), "/s", RAW_TARGETS.get(backend, ""),
                           ratio=statistics.median(raw_ratios), baseline_label=raw_label))
        layer_raw = [r[backend]["storage_layer"]["create"] / r[backend]["raw"] for r in rounds]
        notes.append(f"\n{name}: API creates / {raw_label} {statistics.median(raw_ratios):.2f} "
                     f"({_spread(raw_ratios)}); storage-layer creates / {raw_label} "
                     f"{statistics.median(layer_raw):.2f} ({_spread(layer_raw)}).\n")
    return rows, "\n".join(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--backends", default="sqlite,etcd")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="", help="also write the figures to this file")
    options = parser.parse_args(argv)
    rounds = asyncio.run(main_async(options))
    rows, notes = figures(rounds)
    write_result("datastore", rows, notes=f"{options.objects} ConfigMaps, {options.concurrency} concurrent clients, "
                 f"{options.rounds} rounds (medians; spread of each ratio in brackets):\n\n{notes}")
    for line in report(rounds, options.objects, options.concurrency, header=f"median of {options.rounds} rounds"):
        print(line)
    if options.json:
        with open(options.json, "w") as f:
            json.dump(rounds, f, indent=2)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
