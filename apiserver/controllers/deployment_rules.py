"""The Deployment controller's decisions (pure functions, after upstream's deployment/util and the sync,
rolling, recreate and progress files): template hashes, revisions and their annotations, how far the
new and old ReplicaSets may be scaled, proportional scaling, status and conditions."""
from __future__ import annotations

import copy
import datetime
import json
import math
from dataclasses import dataclass
from typing import Any

from apiserver.kinds.workloads import REVISION_ANNOTATION, scaled_int_or_percent
from shipmate.timeutil import parse_rfc3339, rfc3339

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION_HISTORY_ANNOTATION = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
_NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION_ANNOTATION, REVISION_HISTORY_ANNOTATION,
               DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, "deprecated.deployment.rollback.to"}
MAX_REVISION_HISTORY_CHARS = 2000
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
MAX_INT32 = 2 ** 31 - 1


# --- templates and hashes ---------------------------------------------------------------------
def _fnv32a(data: bytes) -> int:
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def pod_template_hash(template: Obj, collision_count: int | None) -> str:
    """controller.ComputeHash: fnv32a of the template (+ the collision count), digits mapped to the
    alphabet of rand.SafeEncodeString (no vowels, no ambiguous characters)."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little")
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(_fnv32a(data)))


def _without_hash(template: Obj | None) -> Obj:
    template = copy.deepcopy(template or {})
    labels = (template.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return template


def templates_equal(a: Obj | None, b: Obj | None) -> bool:
    """EqualIgnoreHash."""
    return _without_hash(a) == _without_hash(b)


# --- strategy numbers -------------------------------------------------------------------------
def replicas_of(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas") or 0)


def is_rolling(deployment: Obj) -> bool:
    return ((deployment["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def fenceposts(deployment: Obj) -> tuple[int, int]:
    """ResolveFenceposts: (maxSurge rounded up, maxUnavailable rounded down); never both 0."""
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas_of(deployment)
    surge = scaled_int_or_percent(rolling.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_int_or_percent(rolling.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(deployment: Obj) -> int:
    return fenceposts(deployment)[0] if is_rolling(deployment) else 0


def max_unavailable(deployment: Obj) -> int:
    desired = replicas_of(deployment)
    if not is_rolling(deployment) or desired == 0:
        return 0
    return min(fenceposts(deployment)[1], desired)


def total_replicas(replica_sets: list[Obj]) -> int:
    return sum(replicas_of(rs) for rs in replica_sets if rs)


def _status_sum(replica_sets: list[Obj], key: str) -> int:
    return sum(int((rs.get("status") or {}).get(key) or 0) for rs in replica_sets if rs)


def new_rs_replicas(deployment: Obj, all_rss: list[Obj], new_rs: Obj) -> int:
    """NewRSNewReplicas: how far the new ReplicaSet may grow now."""
    desired = replicas_of(deployment)
    if not is_rolling(deployment):
        return desired
    current = total_replicas(all_rss)
    ceiling = desired + max_surge(deployment)
    if current >= ceiling:
        return replicas_of(new_rs)
    return replicas_of(new_rs) + min(ceiling - current, desired - replicas_of(new_rs))


def _by_creation(replica_sets: list[Obj]) -> list[Obj]:
    return sorted(replica_sets, key=lambda rs: (rs["metadata"].get("creationTimestamp") or "", rs["metadata"]["name"]))


def old_scale_down(deployment: Obj, all_rss: list[Obj], old_rss: list[Obj], new_rs: Obj) -> dict[str, int]:
    """reconcileOldReplicaSets: new sizes of old ReplicaSets so that available pods never drop below
    replicas − maxUnavailable (unhealthy old pods are removed first)."""
    if total_replicas(old_rss) == 0:
        return {}
    min_available = replicas_of(deployment) - max_unavailable(deployment)
    new_unavailable = replicas_of(new_rs) - int((new_rs.get("status") or {}).get("availableReplicas") or 0)
    budget = total_replicas(all_rss) - min_available - new_unavailable
    if budget <= 0:
        return {}
    sizes = {rs["metadata"]["name"]: replicas_of(rs) for rs in old_rss}
    # cleanupUnhealthyReplicas: pods of old sets that are not available go first.
    cleaned = 0
    for rs in _by_creation(old_rss):
        if cleaned >= budget:
            break
        name, available = rs["metadata"]["name"], int((rs.get("status") or {}).get("availableReplicas") or 0)
        if sizes[name] == 0 or available == sizes[name]:
            continue
        step = min(budget - cleaned, sizes[name] - available)
        sizes[name] -= step
        cleaned += step
    # scaleDownOldReplicaSetsForRollingUpdate: then healthy ones, oldest first, above the minimum.
    available = _status_sum(all_rss, "availableReplicas")
    if available > min_available:
        room = available - min_available
        for rs in _by_creation(old_rss):
            name = rs["metadata"]["name"]
            if room <= 0:
                break
            if sizes[name] == 0:
                continue
            step = min(sizes[name], room)
            sizes[name] -= step
            room -= step
    return {name: size for name, size in sizes.items()
            if size != replicas_of(next(rs for rs in old_rss if rs["metadata"]["name"] == name))}


def _annotation_int(rs: Obj, key: str) -> int | None:
    value = ((rs.get("metadata") or {}).get("annotations") or {}).get(key)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def is_scaling_event(deployment: Obj, active_rss: list[Obj]) -> bool:
    desired = replicas_of(deployment)
    return any((wanted := _annotation_int(rs, DESIRED_REPLICAS_ANNOTATION)) is not None and wanted != desired
               for rs in active_rss)


def active(replica_sets: list[Obj]) -> list[Obj]:
    return [rs for rs in replica_sets if rs and replicas_of(rs) > 0]


def _round_half_away(value: float) -> int:
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def proportional_sizes(deployment: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """DeploymentController.scale after a change of spec.replicas: name → new size. A lone active (or
    else the newest) set takes it all; a saturated new set empties the old ones; otherwise (rolling)
    the change is spread over the active sets in proportion to their size, leftovers to the largest."""
    desired = replicas_of(deployment)
    active_rss = active(old_rss + ([new_rs] if new_rs else []))
    if len(active_rss) <= 1:
        target = active_rss[0] if active_rss else (new_rs or (_by_creation(old_rss)[-1] if old_rss else None))
        if target is None or replicas_of(target) == desired:
            return {}
        return {target["metadata"]["name"]: desired}
    if new_rs is not None and replicas_of(new_rs) == desired and \
            _annotation_int(new_rs, DESIRED_REPLICAS_ANNOTATION) == desired and \
            int((new_rs.get("status") or {}).get("availableReplicas") or 0) == desired:
        return {rs["metadata"]["name"]: 0 for rs in active(old_rss)}
    if not is_rolling(deployment):
        return {}
    allowed = desired + max_surge(deployment) if desired > 0 else 0
    to_add = allowed - total_replicas(active_rss)
    if to_add > 0:  # scaling up: larger first, newer first among equals
        ordered = sorted(active_rss, key=lambda rs: (-replicas_of(rs), _neg_time(rs)))
    else:  # scaling down: larger first, older first among equals
        ordered = sorted(active_rss, key=lambda rs: (-replicas_of(rs), -_neg_time(rs)))
    sizes: dict[str, int] = {}
    added = 0
    status_replicas = int((deployment.get("status") or {}).get("replicas") or 0)
    for rs in ordered:
        name, size = rs["metadata"]["name"], replicas_of(rs)
        if to_add == 0 or to_add == added:
            sizes[name] = size
            continue
        if desired == 0:
            fraction = -size
        else:
            annotated = _annotation_int(rs, MAX_REPLICAS_ANNOTATION) or status_replicas or size
            fraction = _round_half_away(size * (desired + max_surge(deployment)) / annotated) - size
        room = to_add - added
        proportion = min(fraction, room) if to_add > 0 else max(fraction, room)
        sizes[name] = size + proportion
        added += proportion
    if to_add != 0:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


def _neg_time(rs: Obj) -> float:
    moment = parse_rfc3339(rs["metadata"].get("creationTimestamp"))
    return -moment.timestamp() if moment else 0.0


# --- revisions and annotations ----------------------------------------------------------------
def revision(rs: Obj) -> int:
    return _annotation_int(rs, REVISION_ANNOTATION) or 0


def max_revision(replica_sets: list[Obj]) -> int:
    return max((revision(rs) for rs in replica_sets), default=0)


def replicas_annotations(deployment: Obj) -> dict[str, str]:
    desired = replicas_of(deployment)
    return {DESIRED_REPLICAS_ANNOTATION: str(desired), MAX_REPLICAS_ANNOTATION: str(desired + max_surge(deployment))}


def new_rs_annotations(deployment: Obj, rs_annotations: dict[str, str], new_revision: int,
                       exists: bool) -> dict[str, str]:
    """SetNewReplicaSetAnnotations: the deployment's annotations (minus bookkeeping ones), the revision
    (only ever raised; the replaced revision goes to revision-history on a rollback), replica counts
    for a new set."""
    annotations = dict(rs_annotations)
    for key, value in ((deployment.get("metadata") or {}).get("annotations") or {}).items():
        if key not in _NOT_COPIED:
            annotations[key] = value
    old_text = annotations.get(REVISION_ANNOTATION)
    try:
        old = int(old_text) if old_text is not None else 0
    except ValueError:
        return annotations
    if old < new_revision:
        annotations[REVISION_ANNOTATION] = str(new_revision)
        if old_text is not None:
            history = [h for h in annotations.get(REVISION_HISTORY_ANNOTATION, "").split(",") if h]
            history.append(old_text)
            while len(",".join(history)) > MAX_REVISION_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
            annotations[REVISION_HISTORY_ANNOTATION] = ",".join(history)
    if not exists:
        annotations.update(replicas_annotations(deployment))
    return annotations


def new_rs_template(deployment: Obj, hash_value: str) -> Obj:
    template = copy.deepcopy(deployment["spec"].get("template") or {})
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = hash_value
    return template


def new_rs_selector(deployment: Obj, hash_value: str) -> Obj:
    selector = copy.deepcopy(deployment["spec"].get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_value
    return selector


def replica_sets_to_clean(deployment: Obj, old_rss: list[Obj]) -> list[Obj]:
    """cleanupDeployment: beyond revisionHistoryLimit, the lowest revisions that are scaled to zero."""
    limit = deployment["spec"].get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    excess = len(alive) - limit
    if excess <= 0:
        return []
    ordered = sorted(alive, key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp") or ""))
    return [rs for rs in ordered[:excess]
            if int((rs.get("status") or {}).get("replicas") or 0) == 0 and replicas_of(rs) == 0
            and int(rs["metadata"].get("generation") or 0) <= int((rs.get("status") or {}).get("observedGeneration") or 0)]


# --- status and conditions --------------------------------------------------------------------
def condition(status: Obj, kind: str) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def set_condition(status: Obj, kind: str, state: str, reason: str, message: str, now: datetime.datetime) -> None:
    """SetDeploymentCondition: same status and reason → unchanged; same status keeps lastTransitionTime."""
    current = condition(status, kind)
    if current is not None and current.get("status") == state and current.get("reason") == reason:
        return
    text = rfc3339(now)
    new = {"type": kind, "status": state, "lastUpdateTime": text, "lastTransitionTime": text, "reason": reason,
           "message": message}
    if current is not None and current.get("status") == state:
        new["lastTransitionTime"] = current.get("lastTransitionTime", text)
    status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != kind] + [new]


def calculate_status(deployment: Obj, all_rss: list[Obj], new_rs: Obj | None, now: datetime.datetime) -> Obj:
    available = _status_sum(all_rss, "availableReplicas")
    previous = deployment.get("status") or {}
    status: Obj = {}
    values = (("observedGeneration", int(deployment["metadata"].get("generation") or 0)),
              ("replicas", _status_sum(all_rss, "replicas")),
              ("updatedReplicas", _status_sum([new_rs] if new_rs else [], "replicas")),
              ("readyReplicas", _status_sum(all_rss, "readyReplicas")),
              ("availableReplicas", available),
              ("unavailableReplicas", max(total_replicas(all_rss) - available, 0)))
    for key, value in values:
        if value:
            status[key] = value
    if previous.get("collisionCount") is not None:
        status["collisionCount"] = previous["collisionCount"]
    status["conditions"] = copy.deepcopy(previous.get("conditions") or [])
    if available >= replicas_of(deployment) - max_unavailable(deployment):
        set_condition(status, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.",
                      now)
    else:
        set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", now)
    return status


def has_progress_deadline(deployment: Obj) -> bool:
    deadline = deployment["spec"].get("progressDeadlineSeconds")
    return deadline is not None and deadline != MAX_INT32


def is_complete(deployment: Obj, status: Obj) -> bool:
    desired = replicas_of(deployment)
    return status.get("updatedReplicas", 0) == desired and status.get("replicas", 0) == desired and \
        status.get("availableReplicas", 0) == desired and \
        status.get("observedGeneration", 0) >= int(deployment["metadata"].get("generation") or 0)


def is_progressing(deployment: Obj, status: Obj) -> bool:
    old = deployment.get("status") or {}
    return status.get("updatedReplicas", 0) > old.get("updatedReplicas", 0) or \
        status.get("replicas", 0) - status.get("updatedReplicas", 0) < old.get("replicas", 0) - old.get("updatedReplicas", 0) or \
        status.get("readyReplicas", 0) > old.get("readyReplicas", 0) or \
        status.get("availableReplicas", 0) > old.get("availableReplicas", 0)


def timed_out(deployment: Obj, status: Obj, now: datetime.datetime) -> bool:
    if not has_progress_deadline(deployment):
        return False
    progressing = condition(status, "Progressing")
    if progressing is None:
        return False
    if progressing.get("reason") == "ProgressDeadlineExceeded":
        return True
    if progressing.get("reason") == "NewReplicaSetAvailable":
        return False
    since = parse_rfc3339(progressing.get("lastUpdateTime"))
    return since is not None and since + datetime.timedelta(seconds=deployment["spec"]["progressDeadlineSeconds"]) < now


@dataclass
class RolloutStatus:
    status: Obj
    recheck_in: float | None  # seconds until the progress deadline would pass


def rollout_status(deployment: Obj, all_rss: list[Obj], new_rs: Obj | None, now: datetime.datetime) -> RolloutStatus:
    """syncRolloutStatus: the status plus the Progressing condition (complete / progressing / timed out)."""
    status = calculate_status(deployment, all_rss, new_rs, now)
    recheck = None
    if not has_progress_deadline(deployment):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Progressing"]
        return RolloutStatus(status, None)
    current = condition(status, "Progressing")
    complete_before = status.get("replicas", 0) == status.get("updatedReplicas", 0) and current is not None and \
        current.get("reason") == "NewReplicaSetAvailable"
    subject = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{deployment["metadata"]["name"]}"'
    if not complete_before:
        if is_complete(deployment, status):
            set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                          f"{subject} has successfully progressed.", now)
        elif is_progressing(deployment, status):
            text = rfc3339(now)
            entry = {"type": "Progressing", "status": "True", "lastUpdateTime": text, "lastTransitionTime": text,
                     "reason": "ReplicaSetUpdated", "message": f"{subject} is progressing."}
            if current is not None and current.get("status") == "True":
                entry["lastTransitionTime"] = current.get("lastTransitionTime", text)
            status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Progressing"] + [entry]
        elif timed_out(deployment, status, now):
            set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                          f"{subject} has timed out progressing.", now)
    progressing = condition(status, "Progressing")
    if progressing is not None and progressing.get("status") == "True" and not is_complete(deployment, status) \
            and progressing.get("reason") != "NewReplicaSetAvailable":
        since = parse_rfc3339(progressing.get("lastUpdateTime"))
        if since is not None:
            recheck = max((since - now).total_seconds() + deployment["spec"]["progressDeadlineSeconds"], 0) + 1
    return RolloutStatus(status, recheck)


def paused_condition(deployment: Obj, status: Obj, now: datetime.datetime) -> None:
    """checkPausedConditions: Progressing Unknown DeploymentPaused / DeploymentResumed."""
    if not has_progress_deadline(deployment):
        return
    current = condition(status, "Progressing")
    if current is not None and current.get("reason") == "ProgressDeadlineExceeded":
        return
    paused_now = current is not None and current.get("reason") == "DeploymentPaused"
    if deployment["spec"].get("paused") and not paused_now:
        set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", now)
    elif not deployment["spec"].get("paused") and paused_now:
        set_condition(status, "Progressing", "Unknown", "DeploymentResumed", "Deployment is resumed", now)
