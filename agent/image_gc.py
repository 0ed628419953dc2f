"""Image garbage collection, as kubelet's image GC manager: when the image filesystem's usage reaches
`--image-gc-high-threshold` percent, remove unused images, least recently used first, until usage
is back under `--image-gc-low-threshold`. Images younger than `--minimum-image-ttl-duration` (since
the agent first saw them), images any container uses (running or not), pinned images and the
runtime's sandbox (pause) image are never removed.

Selection is pure; the manager detects images every period, remembers first-seen and last-used
times in memory (as kubelet does), and removes through CRI.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
import grpc

from cri.client import CRIClient
from cri.errors import CRIError, NotFound

from agent.config import AgentConfig
from agent.events import WARNING, EventRecorder, node_reference

log = logging.getLogger(__name__)

GC_PERIOD = 300.0            # kubelet's ImageGCPeriod


@dataclass(frozen=True)
class GCPolicy:
    high_threshold: int = 85          # percent
    low_threshold: int = 80
    min_age: float = 120.0            # seconds


@dataclass(frozen=True)
class ImageRecord:
    id: str
    size: int
    tags: tuple[str, ...]
    first_seen: float
    last_used: float
    protected: bool = False           # pinned or the sandbox image


def bytes_to_free(capacity: int, available: int, policy: GCPolicy) -> int:
    """0 below the high mark; else what brings usage down to the low mark (kubelet's arithmetic)."""
    if capacity <= 0 or policy.high_threshold >= 100:
        return 0
    usage_percent = 100 - (available * 100 // capacity)
    if usage_percent < policy.high_threshold:
        return 0
    return max(0, capacity * (100 - policy.low_threshold) // 100 - available)


def select_images(images: list[ImageRecord], in_use: set[str], now: float, policy: GCPolicy,
                  wanted: int) -> list[ImageRecord]:
    """Unused, old enough, unprotected images, least recently used (then first seen) first, until
    `wanted` bytes are covered (or every candidate is taken)."""
    candidates = sorted((i for i in images if i.id not in in_use and not i.protected
                         and now - i.first_seen >= policy.min_age),
                        key=lambda i: (i.last_used, i.first_seen))
    chosen, freed = [], 0
    for image in candidates:
        if freed >= wanted:
            break
        chosen.append(image)
        freed += image.size
    return chosen


@dataclass
class ImageGC:
    runtime: CRIClient
    policy: GCPolicy = field(default_factory=GCPolicy)
    recorder: EventRecorder | None = None
    node_name: str = ""
    period: float = GC_PERIOD
    _seen: dict[str, tuple[float, float]] = field(default_factory=dict)   # id → (first seen, last used)

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            try:
                await self.collect()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - logged and reported; the next period retries
                log.warning("image garbage collection failed error=%r", error)
                self._event("ImageGCFailed", str(error))

    def _event(self, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(node_reference(self.node_name), WARNING, reason, message)

    async def detect(self, now: float) -> tuple[list[ImageRecord], set[str]]:
        images = await self.runtime.list_images()
        containers = await self.runtime.list_containers()
        in_use = {c.image_ref for c in containers} | {c.image.image for c in containers}
        sandbox_image = await self._sandbox_image()
        records = []
        for image in images:
            first_seen, last_used = self._seen.get(image.id, (now, 0.0))
            if image.id in in_use:
                last_used = now
            self._seen[image.id] = (first_seen, last_used)
            protected = image.pinned or sandbox_image in image.repo_tags
            records.append(ImageRecord(image.id, int(image.size), tuple(image.repo_tags), first_seen, last_used,
                                       protected))
        for gone in set(self._seen) - {i.id for i in images}:
            del self._seen[gone]
        return records, in_use

    async def _sandbox_image(self) -> str:
        try:
            info = (await self.runtime.status(verbose=True)).info
            return json.loads(info.get("config") or "{}").get("sandboxImage", "")
        except (CRIError, ValueError):
            return ""

    async def filesystem(self) -> tuple[int, int]:
        """(capacity, available) bytes of the runtime's image filesystem."""
        filesystems = (await self.runtime.image_fs_info()).image_filesystems
        if not filesystems:
            raise CRIError(grpc.StatusCode.NOT_FOUND, "the runtime reports no image filesystem", "ImageFsInfo")
        stat = await asyncio.to_thread(os.statvfs, filesystems[0].fs_id.mountpoint)
        return stat.f_blocks * stat.f_frsize, stat.f_bavail * stat.f_frsize

    async def collect(self) -> list[ImageRecord]:
        now = time.monotonic()
        records, in_use = await self.detect(now)
        capacity, available = await self.filesystem()
        wanted = bytes_to_free(capacity, available, self.policy)
        if wanted <= 0:
            return []
        chosen = select_images(records, in_use, now, self.policy, wanted)
        removed, freed = [], 0
        for image in chosen:
            try:
                await self.runtime.remove_image(image.id)
            except NotFound:
                pass
            except CRIError as error:
                log.warning("image removal failed image=%s error=%s", image.id, error)
                continue
            removed.append(image)
            freed += image.size
            self._seen.pop(image.id, None)
            log.info("image removed image=%s tags=%s size=%d", image.id, ",".join(image.tags), image.size)
        if freed < wanted:
            message = (f"Failed to garbage collect required amount of images. Attempted to free {wanted} bytes, "
                       f"but only found {freed} bytes eligible to free.")
            log.warning("image garbage collection short freed=%d wanted=%d", freed, wanted)
            self._event("FreeDiskSpaceFailed", message)
        return removed


def policy_from_config(config: AgentConfig) -> GCPolicy:
    return GCPolicy(high_threshold=config.image_gc_high_threshold, low_threshold=config.image_gc_low_threshold,
                    min_age=config.minimum_image_ttl_duration)
