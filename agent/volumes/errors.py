"""The one error type of the volume package."""
from __future__ import annotations


class VolumeError(Exception):
    """A volume cannot be set up or mounted; the message is what kubelet would say (it becomes the
    FailedMount event, or the CreateContainerConfigError message for a bad volumeMount)."""

    def __init__(self, message: str, retry_in: float = 0.0):
        super().__init__(message)
        self.retry_in = retry_in          # when the manager wants the pod synced again
