"""Makes a container's image present per its imagePullPolicy, with kubelet's pull backoff."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from cri.client import CRIClient
from cri.errors import CRIError, RuntimeUnavailable
from cri.gen import api_pb2

from agent.backoff import Backoff
from agent.events import container_field_path
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


# (pod, event type, reason, message, field path): the runtime manager's event recorder.
EventSink = Callable[[dict[str, Any], str, str, str, str], None]


def go_seconds(seconds: float) -> str:
    """A duration truncated to milliseconds as Go prints it: 523ms, 1.2s, 1m2.345s."""
    millis = int(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


class ImageManager:
    def __init__(self, runtime: CRIClient, backoff: Backoff | None = None):
        self.runtime = runtime
        self.backoff = backoff or Backoff()
        self._pulls: dict[str, asyncio.Future[str]] = {}
        self.events: EventSink | None = None

    def _event(self, pod: dict[str, Any], container: dict[str, Any], event_type: str, reason: str,
               message: str) -> None:
        if self.events is not None:
            init = container in (pod.get("spec", {}).get("initContainers") or [])
            self.events(pod, event_type, reason, message, container_field_path(container["name"], init))

    async def ensure_image(self, pod: dict[str, Any], container: dict[str, Any],
                           sandbox_config: api_pb2.PodSandboxConfig) -> str:
        """Returns the image reference to create the container from, or raises ImageError; posts
        kubelet's image events (Pulling, Pulled, Failed, BackOff, ErrImageNeverPull)."""
        image = container["image"]
        key = (pod["metadata"]["uid"], image)
        present = await self.runtime.image_status(image)
        decision = pull_decision(container.get("imagePullPolicy"), image, present is not None)
        if decision is PullDecision.USE_PRESENT:
            self._event(pod, container, "Normal", "Pulled",
                        f'Container image "{image}" already present on machine and can be accessed by the pod')
            return present.id if present is not None else image
        if decision is PullDecision.NEVER_PULL_MISSING:
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(pod, container, "Warning", ERR_IMAGE_NEVER_PULL, message)
            self._event(pod, container, "Warning", "Failed", f"Error: {ERR_IMAGE_NEVER_PULL}")
            raise ImageError(ContainerWaiting(ERR_IMAGE_NEVER_PULL, message))
        if self.backoff.in_backoff(key):
            message = f'Back-off pulling image "{image}"'
            self._event(pod, container, "Normal", "BackOff", message)
            self._event(pod, container, "Warning", "Failed", f"Error: {IMAGE_PULL_BACKOFF}")
            raise ImageError(ContainerWaiting(IMAGE_PULL_BACKOFF, message), self.backoff.remaining(key))
        self._event(pod, container, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            ref = await self._pull_once(image, sandbox_config)
        except RuntimeUnavailable:
            raise
        except CRIError as error:
            delay = self.backoff.failed(key)
            log.info("image pull failed image=%s pod_uid=%s retry_in=%.0fs error=%s",
                     image, key[0], delay, error.message)
            message = f'Failed to pull image "{image}": {error.message}'
            self._event(pod, container, "Warning", "Failed", message)
            self._event(pod, container, "Warning", "Failed", f"Error: {ERR_IMAGE_PULL}")
            raise ImageError(ContainerWaiting(ERR_IMAGE_PULL, message), delay) from None
        took = go_seconds(time.monotonic() - started)
        pulled = await self.runtime.image_status(ref)
        size = pulled.size if pulled is not None else 0
        self._event(pod, container, "Normal", "Pulled",
                    f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
                    f"Image size: {size} bytes.")
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
