"""Pod volumes: emptyDir (disk and memory), hostPath, configMap, secret, downwardAPI, projected."""
from agent.volumes.errors import VolumeError
from agent.volumes.manager import VolumeManager
from agent.volumes.mounts import VolumePaths, container_mounts

__all__ = ["VolumeError", "VolumeManager", "VolumePaths", "container_mounts"]
