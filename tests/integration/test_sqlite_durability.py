"""SQLite durability through a real `shipmate server`: SIGKILL during 1,000 concurrent creates loses no
acknowledged write; watches after the restart; `--snapshot` / `--restore`."""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys

import aiohttp
import pytest

from tests.integration.test_apiserver_kubectl import REPO, Server, free_port

pytestmark = pytest.mark.integration

CREATES = 1000
KILL_AFTER = 300  # acknowledged creates before the SIGKILL: mid-burst


def _configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": name}}


def _opened_revisions(server: Server) -> list[int]:
    with open(server.log_path) as f:
        return [int(m) for m in re.findall(r"storage opened path=\S+ revision=(\d+)", f.read())]


async def _watch_lines(session: aiohttp.ClientSession, url: str, count: int, timeout: float = 10) -> list[dict]:
    events = []
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        assert response.status == 200
        async for line in response.content:
            if line.strip():
                events.append(json.loads(line))
                if len(events) == count:
                    break
    return events


async def test_sigkill_during_concurrent_creates_loses_no_acknowledged_write(tmp_path):
    server = Server(tmp_path)
    server.start()
    base = f"{server.url}/api/v1/namespaces/default/configmaps"
    acknowledged: dict[str, tuple[str, int]] = {}  # name → (uid, resourceVersion)
    failed = 0
    try:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=server.ssl_context())) as session:
            async def create(i: int) -> None:
                nonlocal failed
                try:
                    async with session.post(base, json=_configmap(f"cm-{i:04}")) as response:
                        if response.status != 201:
                            failed += 1
                            return
                        meta = (await response.json())["metadata"]
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    failed += 1
                    return
                acknowledged[meta["name"]] = (meta["uid"], int(meta["resourceVersion"]))
                if len(acknowledged) == KILL_AFTER:
                    os.kill(server.process.pid, signal.SIGKILL)

            await asyncio.gather(*(create(i) for i in range(CREATES)))
        server.process.wait(10)
        assert server.process.returncode == -signal.SIGKILL
        assert KILL_AFTER <= len(acknowledged) < CREATES and failed > 0, (len(acknowledged), failed)

        server.start()
        status, listed = server.request("GET", "/api/v1/namespaces/default/configmaps")
        assert status == 200
        stored = {item["metadata"]["name"]: (item["metadata"]["uid"], int(item["metadata"]["resourceVersion"]))
                  for item in listed["items"]}
        lost = {name for name in acknowledged if stored.get(name) != acknowledged[name]}
        assert not lost, f"{len(lost)} acknowledged creates lost or changed: {sorted(lost)[:5]}"

        # A watch from the newest resourceVersion the client saw: resumes if nothing was written after it,
        # else 410 Expired (SQLite keeps no event history across a restart) and the client relists.
        newest_seen = max(rv for _, rv in acknowledged.values())
        restart_revision = _opened_revisions(server)[-1]
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=server.ssl_context())) as session:
            events = await _watch_lines(session, f"{base}?watch=1&resourceVersion={newest_seen}&timeoutSeconds=5", 1)
            if newest_seen < restart_revision:
                assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410
            list_rv = listed["metadata"]["resourceVersion"]
            watch = asyncio.create_task(_watch_lines(
                session, f"{base}?watch=1&resourceVersion={list_rv}&timeoutSeconds=10", 1))
            await asyncio.sleep(0.3)
            status, _ = server.request("POST", "/api/v1/namespaces/default/configmaps", _configmap("after-restart"))
            assert status == 201
            event = (await watch)[0]
            assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "after-restart"
    finally:
        server.stop()


def _admin(data_dir: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shipmate.cli", "server", "--data-dir", data_dir, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=30)


def test_snapshot_while_serving_and_restore_when_stopped(tmp_path):
    server = Server(tmp_path)
    server.start()
    snapshot = str(tmp_path / "snap.db")
    try:
        for name in ("a", "b"):
            assert server.request("POST", "/api/v1/namespaces/default/configmaps", _configmap(name))[0] == 201
        taken = _admin(server.data_dir, "--snapshot", snapshot)
        assert taken.returncode == 0, taken.stderr
        assert server.request("POST", "/api/v1/namespaces/default/configmaps", _configmap("c"))[0] == 201
        busy = _admin(server.data_dir, "--restore", snapshot)
        assert busy.returncode == 1 and "another shipmate server uses this data dir" in busy.stderr
        second = _admin(server.data_dir, "--bind-address", "127.0.0.1", "--port", str(free_port()),
                        "--admin-kubeconfig", str(tmp_path / "second.kubeconfig"))
        assert second.returncode == 1 and "another shipmate server uses this data dir" in second.stderr
    finally:
        server.stop()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database" * 100)
    refused = _admin(server.data_dir, "--restore", str(garbage))
    assert refused.returncode == 1 and "garbage.db" in refused.stderr
    restored = _admin(server.data_dir, "--restore", snapshot)
    assert restored.returncode == 0, restored.stderr
    server.start()
    try:
        status, listed = server.request("GET", "/api/v1/namespaces/default/configmaps")
        names = {item["metadata"]["name"] for item in listed["items"]}
        assert {"a", "b"} <= names and "c" not in names
        assert server.request("POST", "/api/v1/namespaces/default/configmaps", _configmap("d"))[0] == 201
    finally:
        server.stop()
