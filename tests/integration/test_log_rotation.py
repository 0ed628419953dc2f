"""Log rotation and log following against the host's containerd: a container writing fast, a small limit.

The sandbox uses the node's network (no CNI); its containers carry a node label of their own, so the
rotator only looks at them.
"""
from __future__ import annotations

import asyncio
import gzip
import os
import time
import uuid
from pathlib import Path

import pytest

from agent import labels
from agent.log_rotation import LogRotator, RotationPolicy
from agent.node_server.cri_log import LogOptions
from agent.node_server.log_reader import stream_log
from cri.client import CRIClient
from cri.gen import api_pb2
from tests.integration.test_cri_containerd import BUSYBOX, Pod, client, pod  # noqa: F401 - fixtures

pytestmark = pytest.mark.integration

MAX_SIZE = 20_000
MAX_FILES = 3
WRITER = ["sh", "-c", "i=0; while true; do echo line-$i-$i-$i-$i; i=$((i+1)); usleep 2000; done"]


async def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_fast_writer_is_rotated_compressed_and_followed(client: CRIClient, pod: Pod,
                                                              local_registry: str) -> None:
    node = f"rotation-test-{uuid.uuid4().hex[:8]}"
    pod.config.labels[labels.NODE_NAME] = node
    image_ref = await client.pull_image(BUSYBOX)
    await pod.run()
    container_id = await pod.create("writer", WRITER, image_ref)
    await client.start_container(container_id)
    log_path = Path((await client.container_status(container_id)).status.log_path)
    assert log_path == pod.log_directory / "writer" / "0.log"

    async def big_enough() -> bool:
        return log_path.exists() and log_path.stat().st_size >= MAX_SIZE
    await wait_until(big_enough, 20, "the log to pass the limit")

    followed: list[bytes] = []

    async def collect(chunk: bytes) -> None:
        followed.append(chunk)

    async def running() -> bool:
        status = await client.container_status(container_id)
        return status.status.state == api_pb2.CONTAINER_RUNNING
    follower = asyncio.create_task(stream_log(str(log_path), LogOptions(follow=True), collect, running))

    rotator = LogRotator(client, node, RotationPolicy(MAX_SIZE, MAX_FILES))
    rounds = []
    for _ in range(4):
        await wait_until(big_enough, 20, "the reopened log to pass the limit")
        rounds.append(await rotator.rotate_all())
        await asyncio.sleep(1.1)           # rotated names carry the second
    assert rounds == [1, 1, 1, 1]

    rotated = sorted(name for name in os.listdir(log_path.parent) if name != "0.log")
    assert len(rotated) == MAX_FILES - 1, rotated     # with the current log: max files
    assert rotated[0].endswith(".gz") and not rotated[1].endswith(".gz"), rotated
    assert b"line-" in gzip.decompress((log_path.parent / rotated[0]).read_bytes())
    assert log_path.exists()                           # the runtime reopened the log

    await client.stop_container(container_id, 0)
    await asyncio.wait_for(follower, 10)               # following ends once the container stopped
    numbers = [int(line.split(b"-")[1]) for line in b"".join(followed).splitlines()]
    assert len(numbers) > 1000
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "lines lost or repeated across rotations"
