"""Container log rotation, as kubelet's container log manager does it.

Every 10 s, for each running container of this node whose log reached `--container-log-max-size`:
drop leftovers (`.tmp` files, uncompressed copies of compressed ones), remove the oldest rotated
files so that at most `--container-log-max-files` remain with the new one, gzip the older rotated
files, rename the log to `<log>.<YYYYmmdd-HHMMSS>` and ask the runtime to reopen it
(`ReopenContainerLog`). If the reopen fails the rename is undone, so the next round retries.
"""
from __future__ import annotations

import asyncio
import glob
import gzip
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone

from cri.client import CRIClient
from cri.errors import CRIError, NotFound
from cri.gen import api_pb2

from agent import labels

log = logging.getLogger(__name__)

ROTATION_PERIOD = 10.0
RETRY_MAX = 60.0
COMPRESS_SUFFIX = ".gz"
TMP_SUFFIX = ".tmp"
TIMESTAMP_FORMAT = "%Y%m%d-%H%M%S"


@dataclass(frozen=True)
class RotationPolicy:
    max_size: int
    max_files: int


def needs_rotation(size: int, policy: RotationPolicy) -> bool:
    return size >= policy.max_size


def rotated_name(log_path: str, now: datetime) -> str:
    return f"{log_path}.{now.strftime(TIMESTAMP_FORMAT)}"


@dataclass
class CleanupPlan:
    remove: list[str] = field(default_factory=list)
    compress: list[str] = field(default_factory=list)


def plan_cleanup(rotated: list[str], policy: RotationPolicy) -> CleanupPlan:
    """What to delete and what to compress among the rotated files of one log, before rotating it again.

    The current log and the one about to be rotated count against max_files, so max_files - 2 older
    rotated files stay; the oldest go first (names sort by their timestamp).
    """
    plan = CleanupPlan()
    compressed = {name for name in rotated if name.endswith(COMPRESS_SUFFIX)}
    kept = []
    for name in sorted(rotated):
        if name.endswith(TMP_SUFFIX) or name + COMPRESS_SUFFIX in compressed:
            plan.remove.append(name)
        else:
            kept.append(name)
    excess = len(kept) - max(policy.max_files - 2, 0)
    plan.remove += kept[:max(excess, 0)]
    plan.compress = [name for name in kept[max(excess, 0):] if not name.endswith(COMPRESS_SUFFIX)]
    return plan


def _compress(path: str) -> None:
    tmp = path + COMPRESS_SUFFIX + TMP_SUFFIX
    # Go's gzip default level, as kubelet's: level 9 takes several times longer for little gain.
    with open(path, "rb") as source, gzip.open(tmp, "wb", compresslevel=6) as target:
        shutil.copyfileobj(source, target)
    os.replace(tmp, path + COMPRESS_SUFFIX)
    os.remove(path)


def prepare_rotation(log_path: str, policy: RotationPolicy, now: datetime) -> str | None:
    """Blocking: when the log is over the limit, clean up older files and rename it; the new name or None."""
    try:
        size = os.stat(log_path).st_size
    except FileNotFoundError:
        return None
    if not needs_rotation(size, policy):
        return None
    plan = plan_cleanup(glob.glob(glob.escape(log_path) + ".*"), policy)
    for name in plan.remove:
        try:
            os.remove(name)
        except FileNotFoundError:
            pass
    for name in plan.compress:
        _compress(name)
    target = rotated_name(log_path, now)
    os.rename(log_path, target)
    return target


def logs_over_limit(log_paths: dict[str, str], policy: RotationPolicy) -> list[str]:
    """Blocking: the ids of the containers whose log has grown past the size limit (one stat each)."""
    over = []
    for container_id, log_path in log_paths.items():
        try:
            if needs_rotation(os.stat(log_path).st_size, policy):
                over.append(container_id)
        except FileNotFoundError:
            pass
    return over


class LogRotator:
    def __init__(self, runtime: CRIClient, node_name: str, policy: RotationPolicy,
                 period: float = ROTATION_PERIOD) -> None:
        self.runtime, self.node_name, self.policy, self.period = runtime, node_name, policy, period
        # A container's log path never changes: one ContainerStatus per container, not one per round
        # (at 110 pods that was 11 gRPC calls and thread hops a second).
        self._log_paths: dict[str, str] = {}

    async def run(self) -> None:
        delay = self.period
        while True:
            await asyncio.sleep(delay)
            try:
                await self.rotate_all()
                delay = self.period
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the loop outlives any one failure
                delay = min(delay * 2, RETRY_MAX)
                log.warning("log rotation round failed error=%r retry_in=%.0fs", error, delay)

    async def rotate_all(self) -> int:
        """One round; returns how many logs were rotated."""
        running = await self.runtime.list_containers(api_pb2.ContainerFilter(
            state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING),
            label_selector={labels.NODE_NAME: self.node_name}))
        running_ids = {container.id for container in running}
        for gone in set(self._log_paths) - running_ids:
            del self._log_paths[gone]
        for container_id in running_ids - set(self._log_paths):
            try:
                self._log_paths[container_id] = await self._log_path(container_id)
            except CRIError as error:
                log.warning("log rotation failed container=%s error=%s", container_id[:13], error)
        watched = {cid: path for cid, path in self._log_paths.items() if path}
        rotated = 0
        for container_id in await asyncio.to_thread(logs_over_limit, watched, self.policy):
            try:
                rotated += await self._rotate(container_id, watched[container_id])
            except (CRIError, OSError) as error:
                log.warning("log rotation failed container=%s error=%s", container_id[:13], error)
        return rotated

    async def _log_path(self, container_id: str) -> str:
        try:
            return (await self.runtime.container_status(container_id)).status.log_path
        except NotFound:
            return ""

    async def _rotate(self, container_id: str, log_path: str) -> int:
        target = await asyncio.to_thread(prepare_rotation, log_path, self.policy, datetime.now(timezone.utc))
        if target is None:
            return 0
        try:
            await self.runtime.reopen_container_log(container_id)
        except CRIError:
            await asyncio.to_thread(os.rename, target, log_path)
            raise
        log.info("container log rotated container=%s log=%s", container_id[:13], target)
        return 1
