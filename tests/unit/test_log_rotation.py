"""Rotation decisions of the container log manager, and one rotation on real files."""
from __future__ import annotations

import gzip
import os
from datetime import datetime, timezone

import pytest

from agent.log_rotation import (LogRotator, RotationPolicy, logs_over_limit, needs_rotation, plan_cleanup,
                                prepare_rotation, rotated_name)
from cri.gen import api_pb2

NOW = datetime(2026, 11, 26, 1, 2, 3, tzinfo=timezone.utc)


def test_needs_rotation_and_name() -> None:
    policy = RotationPolicy(max_size=100, max_files=3)
    assert not needs_rotation(99, policy) and needs_rotation(100, policy)
    assert rotated_name("/l/c/0.log", NOW) == "/l/c/0.log.20261126-010203"


def test_plan_keeps_max_files_minus_two_rotated_and_compresses_them() -> None:
    rotated = ["0.log.20260101-000003", "0.log.20260101-000001.gz", "0.log.20260101-000002",
               "0.log.20260101-000004"]
    plan = plan_cleanup(rotated, RotationPolicy(100, max_files=4))
    assert plan.remove == ["0.log.20260101-000001.gz", "0.log.20260101-000002"]
    assert plan.compress == ["0.log.20260101-000003", "0.log.20260101-000004"]
    assert plan_cleanup(rotated, RotationPolicy(100, max_files=2)).remove == sorted(rotated)


def test_plan_drops_tmp_files_and_uncompressed_duplicates() -> None:
    rotated = ["0.log.1", "0.log.1.gz", "0.log.2.gz.tmp", "0.log.3"]
    plan = plan_cleanup(rotated, RotationPolicy(100, max_files=5))
    assert sorted(plan.remove) == ["0.log.1", "0.log.2.gz.tmp"]
    assert plan.compress == ["0.log.3"]


def test_prepare_rotation_on_files(tmp_path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"x" * 10)
    policy = RotationPolicy(max_size=10, max_files=3)
    (tmp_path / "0.log.20200101-000000").write_bytes(b"old")
    (tmp_path / "0.log.20200101-000001").write_bytes(b"older-but-newer")
    target = prepare_rotation(str(log), policy, NOW)
    assert target == str(tmp_path / "0.log.20261126-010203") and not log.exists()
    names = sorted(os.listdir(tmp_path))
    assert names == ["0.log.20200101-000001.gz", "0.log.20261126-010203"]
    assert gzip.decompress((tmp_path / names[0]).read_bytes()) == b"older-but-newer"
    log.write_bytes(b"small")
    assert prepare_rotation(str(log), policy, NOW) is None
    assert prepare_rotation(str(tmp_path / "missing.log"), policy, NOW) is None


def test_agent_flags() -> None:
    from agent.config import parse_args
    config = parse_args(["--node-ip", "10.0.0.1"])
    assert (config.node_server_port, config.container_log_max_size, config.container_log_max_files) == \
        (10250, 10 * 1024 * 1024, 5)
    config = parse_args(["--node-ip", "10.0.0.1", "--node-server-port", "20250", "--container-log-max-size",
                         "500Ki", "--container-log-max-files", "2"])
    assert (config.node_server_port, config.container_log_max_size, config.container_log_max_files) == \
        (20250, 500 * 1024, 2)
    for bad in (["--container-log-max-files", "1"], ["--container-log-max-size", "lots"],
                ["--node-server-port", "0"]):
        with pytest.raises(SystemExit):
            parse_args(["--node-ip", "10.0.0.1", *bad])


class FakeRuntime:
    """Two running containers; counts ContainerStatus calls and records reopened logs."""
    def __init__(self, logs: dict[str, str]) -> None:
        self.logs, self.status_calls, self.reopened = logs, 0, []

    async def list_containers(self, _filter):
        return [api_pb2.Container(id=cid) for cid in self.logs]

    async def container_status(self, cid):
        self.status_calls += 1
        return api_pb2.ContainerStatusResponse(status=api_pb2.ContainerStatus(id=cid, log_path=self.logs[cid]))

    async def reopen_container_log(self, cid):
        self.reopened.append(cid)
        open(self.logs[cid], "w").close()


async def test_rotator_reads_each_log_path_once_and_rotates_only_big_logs(tmp_path) -> None:
    small, big = tmp_path / "small.log", tmp_path / "big.log"
    small.write_bytes(b"x" * 10)
    big.write_bytes(b"x" * 500)
    runtime = FakeRuntime({"a": str(small), "b": str(big)})
    rotator = LogRotator(runtime, "node", RotationPolicy(max_size=100, max_files=3))
    assert logs_over_limit(runtime.logs, rotator.policy) == ["b"]
    assert await rotator.rotate_all() == 1 and runtime.reopened == ["b"]
    assert await rotator.rotate_all() == 0
    assert runtime.status_calls == 2          # once per container, not once per round
