"""The kinds of the DaemonSet/StatefulSet issue, registered together: apps/v1 DaemonSets, StatefulSets and
ControllerRevisions, core/v1 PersistentVolumeClaims (what volumeClaimTemplates create)."""
from __future__ import annotations

from apiserver.kinds.base import Strategy
from apiserver.kinds.controllerrevisions import ControllerRevisionStrategy
from apiserver.kinds.daemonsets import DaemonSetStrategy
from apiserver.kinds.persistentvolumeclaims import PersistentVolumeClaimStrategy
from apiserver.kinds.statefulsets import StatefulSetStrategy


def apps_set_strategies() -> list[Strategy]:
    return [DaemonSetStrategy(), StatefulSetStrategy(), ControllerRevisionStrategy(), PersistentVolumeClaimStrategy()]
