"""Table columns of Deployments, ReplicaSets and ReplicationControllers (kubectl's printers), and the
label-selector text they and the Scale subresource show."""
from __future__ import annotations

import datetime
from typing import Any

from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age

Obj = dict[str, Any]

_CONTAINERS = Column("Containers", "string", "", "Names of each container in the template.", 1)
_IMAGES = Column("Images", "string", "", "Images referenced by each container in the template.", 1)
_SELECTOR = Column("Selector", "string", "", "Label selector for pods. Existing ReplicaSets whose pods are "
                   "selected by this will be the ones affected by this deployment.", 1)

DEPLOYMENT_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Ready", "string", "", "Number of the pod with ready state"),
    Column("Up-to-date", "string", "", "Total number of non-terminated pods targeted by this deployment that "
           "have the desired template spec."),
    Column("Available", "string", "", "Total number of available non-terminating pods (ready for at least "
           "minReadySeconds) targeted by this deployment."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    _CONTAINERS, _IMAGES, _SELECTOR,
]

REPLICASET_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Desired", "integer", "", "Replicas is the number of desired pods. This is a pointer to distinguish "
           "between explicit zero and unspecified. Defaults to 1."),
    Column("Current", "integer", "", "Replicas is the most recently observed number of non-terminating pods."),
    Column("Ready", "integer", "", "The number of non-terminating pods targeted by this ReplicaSet with a Ready "
           "Condition."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    _CONTAINERS, _IMAGES, _SELECTOR,
]


def selector_string(selector: Obj | None) -> str:
    """metav1.LabelSelector as labels.Selector.String(): requirements sorted by key, "" when empty."""
    if not selector:
        return ""
    parts: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator")
        values = ",".join(sorted(expression.get("values") or []))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key,
                "DoesNotExist": f"!{key}"}.get(operator, key)
        parts.append((key, text))
    return ",".join(text for _, text in sorted(parts))


def map_selector_string(selector: dict[str, str] | None) -> str:
    """A ReplicationController's map selector as labels.SelectorFromSet(...).String()."""
    return ",".join(f"{key}={selector[key]}" for key in sorted(selector or {}))


def _template_columns(obj: Obj) -> tuple[str, str]:
    containers = (((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def deployment_row(deployment: Obj, now: datetime.datetime) -> Row:
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    names, images = _template_columns(deployment)
    return Row([deployment["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}",
                status.get("updatedReplicas", 0), status.get("availableReplicas", 0),
                age(deployment["metadata"].get("creationTimestamp"), now), names, images,
                selector_string(spec.get("selector")) or "<none>"])


def replica_set_row(replica_set: Obj, now: datetime.datetime) -> Row:
    spec, status = replica_set.get("spec") or {}, replica_set.get("status") or {}
    names, images = _template_columns(replica_set)
    selector = spec.get("selector")
    selector_text = selector_string(selector) if replica_set.get("kind") != "ReplicationController" \
        else map_selector_string(selector)
    return Row([replica_set["metadata"]["name"], spec.get("replicas", 0), status.get("replicas", 0),
                status.get("readyReplicas", 0), age(replica_set["metadata"].get("creationTimestamp"), now),
                names, images, selector_text or "<none>"])


def deployment_table(now: datetime.datetime) -> TableSpec:
    return TableSpec(DEPLOYMENT_COLUMNS, lambda obj: deployment_row(obj, now))


def replica_set_table(now: datetime.datetime) -> TableSpec:
    return TableSpec(REPLICASET_COLUMNS, lambda obj: replica_set_row(obj, now))
