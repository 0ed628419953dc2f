"""Makes a container's image present per its imagePullPolicy, with kubelet's pull backoff."""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from cri.client import CRIClient
from cri.errors import CRIError, RuntimeUnavailable
from cri.gen import api_pb2

from agent.backoff import Backoff
from agent.image_policy import PullDecision, pull_decision
from agent.pod_status import ContainerWaiting

log = logging.getLogger(__name__)

ERR_IMAGE_PULL = "ErrImagePull"
IMAGE_PULL_BACKOFF = "ImagePullBackOff"
ERR_IMAGE_NEVER_PULL = "ErrImageNeverPull"


class ImageError(Exception):
    """The image is not usable now; `waiting` is what the container status shows."""

    def __init__(self, waiting: ContainerWaiting, retry_in: float = 0.0):
        self.waiting = waiting
        self.retry_in = retry_in
        super().__init__(f"{waiting.reason}: {waiting.message}")


class ImageManager:
    def __init__(self, runtime: CRIClient, backoff: Backoff | None = None):
        self.runtime = runtime
        self.backoff = backoff or Backoff()
        self._pulls: dict[str, asyncio.Future[str]] = {}

    async def ensure_image(self, pod_uid: str, container: dict[str, Any],
                           sandbox_config: api_pb2.PodSandboxConfig) -> str:
        """Returns the image reference to create the container from, or raises ImageError."""
        image = container["image"]
        key = (pod_uid, image)
        present = await self.runtime.image_status(image)
        decision = pull_decision(container.get("imagePullPolicy"), image, present is not None)
        if decision is PullDecision.USE_PRESENT:
            return present.id if present is not None else image
        if decision is PullDecision.NEVER_PULL_MISSING:
            raise ImageError(ContainerWaiting(
                ERR_IMAGE_NEVER_PULL,
                f'Container image "{image}" is not present with pull policy of Never'))
        if self.backoff.in_backoff(key):
            raise ImageError(ContainerWaiting(IMAGE_PULL_BACKOFF, f'Back-off pulling image "{image}"'),
                             self.backoff.remaining(key))
        try:
            ref = await self._pull_once(image, sandbox_config)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            delay = self.backoff.failed(key)
            log.info("image pull failed image=%s pod_uid=%s retry_in=%.0fs error=%s",
                     image, pod_uid, delay, error.message)
            raise ImageError(ContainerWaiting(ERR_IMAGE_PULL, f'Failed to pull image "{image}": {error.message}'),
                             delay) from None
        self.backoff.reset(key)
        return ref

    async def _pull_once(self, image: str, sandbox_config: api_pb2.PodSandboxConfig) -> str:
        """Concurrent pulls of one image (several pods or containers) share one CRI call."""
        pending = self._pulls.get(image)
        if pending is None:
            pending = asyncio.ensure_future(self.runtime.pull_image(image, sandbox_config))
            self._pulls[image] = pending
            pending.add_done_callback(lambda _f: self._pulls.pop(image, None))
        return await asyncio.shield(pending)

    def forget_pod(self, pod_uid: str) -> None:
        self.backoff.forget_where(lambda key: isinstance(key, tuple) and key[0] == pod_uid)
