"""Helpers shared by the integration and e2e tests: polling, and the runtime's view through CRI."""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, TypeVar

T = TypeVar("T")


def wait_for(condition: Callable[[], T | None], timeout: float = 10.0, what: str = "condition",
             interval: float = 0.05) -> T:
    """Polls until `condition` returns a truthy value; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def runtime_sandboxes(**labels: str) -> list[Any]:
    """The CRI sandboxes containerd holds with these labels, asked through CRI itself."""
    from cri.client import CRIClient
    from cri.gen import api_pb2

    async def query() -> list[Any]:
        async with CRIClient() as runtime:
            return await runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector=labels))
    return asyncio.run(query())


async def remove_runtime_pods(labels: dict[str, str]) -> None:
    """Stops and removes the containers, then the sandboxes, that carry these labels."""
    from cri.client import CRIClient
    from cri.gen import api_pb2

    async with CRIClient() as runtime:
        for container in await runtime.list_containers(api_pb2.ContainerFilter(label_selector=labels)):
            await runtime.stop_container(container.id, 0)
            await runtime.remove_container(container.id)
        for sandbox in await runtime.list_pod_sandbox(api_pb2.PodSandboxFilter(label_selector=labels)):
            await runtime.stop_pod_sandbox(sandbox.id)
            await runtime.remove_pod_sandbox(sandbox.id)
