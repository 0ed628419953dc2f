"""What the Job controller decides (pure functions, as upstream's pkg/controller/job): which pods count as
active, failed or terminating, which pods to create (with which completion index) or delete, the pod back-off
after failures, the pod failure and success policies, and the pod a Job creates."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any, Iterable

from apiserver.controllers.ownership import is_pod_active, is_pod_ready, owner_reference, ready_since
from apiserver.kinds.batch import (JOB_COMPLETION_INDEX, JOB_TRACKING_FINALIZER, parse_index_interval)
from shipmate.timeutil import parse_rfc3339, rfc3339

Obj = dict[str, Any]

UNKNOWN_INDEX = -1
COMPLETION_INDEX_ENV = "JOB_COMPLETION_INDEX"
MAX_GENERATED_NAME_LENGTH = 58  # 63 minus the 5 random characters
MAX_UNCOUNTED_PODS = 500
MAX_POD_CREATE_DELETE_PER_SYNC = 500
DEFAULT_POD_FAILURE_BACKOFF = 10.0   # seconds: the first re-creation delay after a failure, doubling ...
MAX_POD_FAILURE_BACKOFF = 600.0      # ... up to ten minutes
_PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


# --- the job ---------------------------------------------------------------------------------------
def find_condition(job: Obj, kind: str) -> Obj | None:
    for condition in (job.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return None


def condition_true(job: Obj, kind: str) -> bool:
    condition = find_condition(job, kind)
    return condition is not None and condition.get("status") == "True"


def is_finished(job: Obj) -> bool:
    """Complete=True or Failed=True."""
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def is_suspended(job: Obj) -> bool:
    return bool((job.get("spec") or {}).get("suspend"))


def only_replace_failed_pods(job: Obj) -> bool:
    """Replacement pods wait until the old ones are gone (podReplacementPolicy Failed, or a pod failure
    policy) instead of starting as soon as they terminate."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def new_condition(kind: str, status: str, reason: str, message: str, now: datetime.datetime) -> Obj:
    stamp = rfc3339(now)
    return {"type": kind, "status": status, "lastProbeTime": stamp, "lastTransitionTime": stamp,
            "reason": reason, "message": message}


def ensure_condition(conditions: list[Obj], kind: str, status: str, reason: str, message: str,
                     now: datetime.datetime) -> bool:
    """ensureJobConditionStatus: updates the condition of that type, or appends it unless it would be
    False; True when the list changed."""
    for index, condition in enumerate(conditions):
        if condition.get("type") == kind:
            if (condition.get("status"), condition.get("reason"), condition.get("message")) != (status, reason, message):
                conditions[index] = new_condition(kind, status, reason, message, now)
                return True
            return False
    if status != "False":
        conditions.append(new_condition(kind, status, reason, message, now))
        return True
    return False


# --- pods --------------------------------------------------------------------------------------------
def has_tracking_finalizer(pod: Obj) -> bool:
    return JOB_TRACKING_FINALIZER in (pod["metadata"].get("finalizers") or [])


def completion_index(pod: Obj) -> int:
    """The pod's `batch.kubernetes.io/job-completion-index` annotation, or UNKNOWN_INDEX."""
    value = (pod["metadata"].get("annotations") or {}).get(JOB_COMPLETION_INDEX)
    if value is None or not value.lstrip("+-").isdigit():
        return UNKNOWN_INDEX
    index = int(value)
    return index if index >= 0 else UNKNOWN_INDEX


def phase(pod: Obj) -> str:
    return (pod.get("status") or {}).get("phase", "")


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """Failed, or (unless only failed pods are replaced) deleted before it succeeded."""
    if phase(pod) == "Failed":
        return True
    if only_replace_failed_pods(job):
        return False
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) != "Succeeded"


def is_terminating(pod: Obj) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp")) and phase(pod) not in ("Failed", "Succeeded")


def active_pods(pods: Iterable[Obj]) -> list[Obj]:
    return [pod for pod in pods if is_pod_active(pod)]


def count_ready(pods: Iterable[Obj]) -> int:
    return sum(1 for pod in pods if is_pod_ready(pod))


def _restarts(pod: Obj) -> int:
    return max((c.get("restartCount", 0) for c in (pod.get("status") or {}).get("containerStatuses") or []),
               default=0)


def _newer_first(moment: datetime.datetime | None) -> float:
    """afterOrZero: a missing time first, then later times before earlier ones."""
    return float("-inf") if moment is None else -moment.timestamp()


def active_pods_order(pod: Obj) -> tuple:
    """controller.ActivePods: the pods to remove first sort first (unscheduled, Pending < Unknown < Running,
    not ready, ready for less time, more restarts, newer)."""
    ready = is_pod_ready(pod)
    return (bool((pod.get("spec") or {}).get("nodeName")), _PHASE_ORDER.get(phase(pod), 0), ready,
            _newer_first(ready_since(pod)) if ready else 0.0, -_restarts(pod),
            _newer_first(parse_rfc3339(pod["metadata"].get("creationTimestamp"))))


def active_pods_for_removal(job: Obj, pods: list[Obj], remove_at_least: int) -> list[Obj]:
    """Pods to delete: for Indexed Jobs first those without a valid index or repeating one, then (when more
    must go) in ActivePods order."""
    remove: list[Obj] = []
    left = pods
    if is_indexed(job):
        remove, left = duplicated_index_pods(pods, (job.get("spec") or {}).get("completions") or 0)
    if len(remove) < remove_at_least:
        left = sorted(left, key=active_pods_order)
        remove += left[:remove_at_least - len(remove)]
    return remove


def duplicated_index_pods(pods: list[Obj], completions: int) -> tuple[list[Obj], list[Obj]]:
    """appendDuplicatedIndexPodsForRemoval: (to remove, to keep). Pods without an index or with one out of
    range go; of pods sharing an index the one ActivePods would keep longest stays."""
    remove: list[Obj] = []
    keep: list[Obj] = []
    by_index: dict[int, list[Obj]] = {}
    for pod in pods:
        index = completion_index(pod)
        if index == UNKNOWN_INDEX or index >= completions:
            remove.append(pod)
        else:
            by_index.setdefault(index, []).append(pod)
    for index in sorted(by_index):
        group = sorted(by_index[index], key=active_pods_order)
        remove += group[:-1]
        keep.append(group[-1])
    return remove, keep


def finished_time(pod: Obj) -> datetime.datetime:
    """getFinishedTime: the last container finish, else the Ready=False transition, else the deletion time
    minus its grace, else the creation time."""
    status = pod.get("status") or {}
    latest = None
    statuses = status.get("containerStatuses") or []
    for container in statuses:
        terminated = (container.get("state") or {}).get("terminated") or {}
        moment = parse_rfc3339(terminated.get("finishedAt"))
        if moment is None:
            latest = None
            break
        latest = moment if latest is None or moment > latest else latest
    if latest is not None:
        return latest
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            moment = parse_rfc3339(condition.get("lastTransitionTime"))
            if moment is not None:
                return moment
    meta = pod["metadata"]
    deleted = parse_rfc3339(meta.get("deletionTimestamp"))
    if deleted is not None:
        return deleted - datetime.timedelta(seconds=meta.get("deletionGracePeriodSeconds") or 0)
    return parse_rfc3339(meta.get("creationTimestamp")) or datetime.datetime.fromtimestamp(0, datetime.timezone.utc)


# --- back-off ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BackoffRecord:
    failures_after_last_success: int = 0
    last_failure_time: datetime.datetime | None = None


def new_backoff_record(old: BackoffRecord | None, new_succeeded: list[Obj], new_failed: list[Obj]) -> BackoffRecord:
    """newBackoffRecord: consecutive failures since the last success, and when the last one happened."""
    record = old or BackoffRecord()
    succeeded = sorted(finished_time(p) for p in new_succeeded)
    failed = sorted(finished_time(p) for p in new_failed)
    if not succeeded:
        if not failed:
            return record
        return BackoffRecord(record.failures_after_last_success + len(failed), failed[-1])
    if not failed:
        return BackoffRecord()
    last_success = succeeded[-1]
    after = [moment for moment in failed if moment > last_success]
    return BackoffRecord(len(after), after[-1] if after else None)


def backoff_delay(failures: int, initial: float | None = None, maximum: float | None = None) -> float:
    """10 s after the first failure, doubling per consecutive failure, at most 10 min."""
    initial = DEFAULT_POD_FAILURE_BACKOFF if initial is None else initial
    maximum = MAX_POD_FAILURE_BACKOFF if maximum is None else maximum
    if failures <= 0:
        return 0.0
    delay = initial
    for _ in range(1, failures):
        delay *= 2
        if delay >= maximum:
            return maximum
    return delay


def remaining_backoff(record: BackoffRecord, now: datetime.datetime) -> float:
    """Seconds until new pods may be created (0: now)."""
    if record.failures_after_last_success == 0 or record.last_failure_time is None:
        return 0.0
    delay = backoff_delay(record.failures_after_last_success)
    elapsed = (now - record.last_failure_time).total_seconds()
    return 0.0 if delay < elapsed else delay - elapsed


# --- pod failure policy ----------------------------------------------------------------------------------
def _terminated(container: Obj) -> Obj | None:
    return (container.get("state") or {}).get("terminated")


def _exit_code_matches(code: int, requirement: Obj) -> bool:
    values = requirement.get("values") or []
    if requirement.get("operator") == "In":
        return code in values
    if requirement.get("operator") == "NotIn":
        return code not in values
    return False


def _matching_container(pod: Obj, requirement: Obj) -> Obj | None:
    status = pod.get("status") or {}
    for key in ("containerStatuses", "initContainerStatuses"):
        for container in status.get(key) or []:
            terminated = _terminated(container)
            if terminated is None:
                continue
            name = requirement.get("containerName")
            if (name is None or name == container.get("name")) and terminated.get("exitCode", 0) != 0 and \
                    _exit_code_matches(terminated.get("exitCode", 0), requirement):
                return container
    return None


def _matching_condition(pod: Obj, patterns: list[Obj]) -> Obj | None:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        for pattern in patterns:
            if condition.get("type") == pattern.get("type") and condition.get("status") == pattern.get("status"):
                return condition
    return None


def match_pod_failure_policy(policy: Obj | None, pod: Obj) -> tuple[str | None, bool, str | None]:
    """(job failure message for a FailJob rule, whether the failure counts against backoffLimit, the action
    of the matching rule)."""
    if policy is None:
        return None, True, None
    meta = pod["metadata"]
    for index, rule in enumerate(policy.get("rules") or []):
        action = rule.get("action")
        if rule.get("onExitCodes") is not None:
            container = _matching_container(pod, rule["onExitCodes"])
            if container is None:
                continue
            if action == "FailJob":
                code = _terminated(container).get("exitCode")
                return (f"Container {container.get('name')} for pod {meta.get('namespace')}/{meta.get('name')} "
                        f"failed with exit code {code} matching FailJob rule at index {index}"), True, action
        elif rule.get("onPodConditions") is not None:
            condition = _matching_condition(pod, rule["onPodConditions"])
            if condition is None:
                continue
            if action == "FailJob":
                return (f"Pod {meta.get('namespace')}/{meta.get('name')} has condition {condition.get('type')} "
                        f"matching FailJob rule at index {index}"), True, action
        else:
            continue
        if action == "Ignore":
            return None, False, action
        return None, True, action  # Count (and FailIndex, which needs backoffLimitPerIndex)
    return None, True, None


def fail_job_message(job: Obj, pods: list[Obj]) -> str | None:
    """getFailJobMessage: the message of the first failed pod matching a FailJob rule."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    if policy is None:
        return None
    for pod in pods:
        if is_pod_failed(pod, job):
            message, _, _ = match_pod_failure_policy(policy, pod)
            if message is not None:
                return message
    return None


def counted_failures(job: Obj, failed: list[Obj]) -> int:
    """nonIgnoredFailedPodsCount: failures not matched by an Ignore rule."""
    policy = (job.get("spec") or {}).get("podFailurePolicy")
    return sum(1 for pod in failed if match_pod_failure_policy(policy, pod)[1])


def past_backoff_limit_on_failure(job: Obj, pods: list[Obj]) -> bool:
    """restartPolicy OnFailure: container restarts of the running/pending pods count as failures."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = 0
    for pod in pods:
        if phase(pod) in ("Running", "Pending"):
            status = pod.get("status") or {}
            for key in ("initContainerStatuses", "containerStatuses"):
                restarts += sum(c.get("restartCount", 0) for c in status.get(key) or [])
    limit = spec.get("backoffLimit", 6)
    return restarts > 0 if limit == 0 else restarts >= limit


def seconds_until_deadline(job: Obj, now: datetime.datetime) -> float | None:
    """Seconds left of activeDeadlineSeconds (<= 0: past it); None without a deadline, start or while suspended."""
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    start = parse_rfc3339((job.get("status") or {}).get("startTime"))
    if deadline is None or start is None or is_suspended(job):
        return None
    return deadline - (now - start).total_seconds()


def want_active(job: Obj, active: int, succeeded: int) -> int:
    """Pods that should be running: parallelism, but no more than the completions still missing (without
    completions: parallelism until the first success, then whatever still runs)."""
    spec = job.get("spec") or {}
    parallelism = spec.get("parallelism") or 0
    completions = spec.get("completions")
    if completions is None:
        return active if succeeded > 0 else parallelism
    return max(0, min(completions - succeeded, parallelism))


def is_complete(job: Obj, succeeded: int, active: int) -> bool:
    completions = (job.get("spec") or {}).get("completions")
    if completions is None:
        return succeeded > 0 and active == 0
    return succeeded >= completions and active == 0


# --- completion indexes -----------------------------------------------------------------------------------
Intervals = list[tuple[int, int]]


def parse_intervals(text: str | None, completions: int) -> Intervals:
    """succeededIndexesFromString: "0-2,5" → [(0, 2), (5, 5)], dropping what is at or above completions and
    merging adjacent intervals; malformed parts are skipped."""
    result: Intervals = []
    for part in (text or "").split(",") if text else []:
        limits = part.split("-")
        try:
            first = int(limits[0])
        except ValueError:
            continue
        if first >= completions:
            break
        if len(limits) > 1:
            try:
                last = min(int(limits[1]), completions - 1)
            except ValueError:
                continue
        else:
            last = first
        if result and result[-1][1] == first - 1:
            result[-1] = (result[-1][0], last)
        else:
            result.append((first, last))
    return result


def with_indexes(intervals: Intervals, indexes: Iterable[int]) -> Intervals:
    """The intervals with more (sorted) indexes merged in."""
    points = sorted(set(indexes))
    merged: Intervals = []
    items = sorted(list(intervals) + [(i, i) for i in points])
    for first, last in items:
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def format_intervals(intervals: Intervals) -> str:
    """"0-2,5,7,8": a pair of adjacent indexes is written as two numbers, as upstream does."""
    parts = []
    for first, last in intervals:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def total(intervals: Intervals) -> int:
    return sum(last - first + 1 for first, last in intervals)


def contains(intervals: Intervals, index: int) -> bool:
    return any(first <= index <= last for first, last in intervals)


def succeeded_indexes(job: Obj, pods: list[Obj]) -> tuple[Intervals, Intervals]:
    """calculateSucceededIndexes: (the intervals status.completedIndexes holds, those plus the indexes of
    succeeded pods still carrying the tracking finalizer)."""
    completions = (job.get("spec") or {}).get("completions") or 0
    previous = parse_intervals((job.get("status") or {}).get("completedIndexes"), completions)
    new = {completion_index(p) for p in pods
           if phase(p) == "Succeeded" and UNKNOWN_INDEX != completion_index(p) < completions
           and has_tracking_finalizer(p)}
    return previous, with_indexes(previous, new)


def first_pending_indexes(active: list[Obj], succeeded: Intervals, count: int, completions: int) -> list[int]:
    """The `count` lowest indexes below completions neither succeeded nor held by an active pod."""
    taken = with_indexes(succeeded, [i for i in (completion_index(p) for p in active) if i != UNKNOWN_INDEX])
    result: list[int] = []
    candidate = 0
    for first, last in taken:
        while candidate < completions and len(result) < count and candidate < first:
            result.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    while candidate < completions and len(result) < count:
        result.append(candidate)
        candidate += 1
    return result


def match_success_policy(policy: Obj | None, completions: int, succeeded: Intervals) -> str | None:
    """The SuccessCriteriaMet message when a successPolicy rule is met, else None."""
    if not policy or not succeeded:
        return None
    for position, rule in enumerate(policy.get("rules") or []):
        indexes_text, count = rule.get("succeededIndexes"), rule.get("succeededCount")
        if indexes_text is not None:
            wanted: list[int] = []
            try:
                for part in indexes_text.split(","):
                    first, last = parse_index_interval(part, completions)
                    wanted.extend(range(first, last + 1))
            except ValueError:
                continue
            hits = sum(1 for index in wanted if contains(succeeded, index))
            if (count is None and hits == len(wanted)) or (count is not None and hits >= count):
                return f"Matched rules at index {position}"
        elif count is not None and total(succeeded) >= count:
            return f"Matched rules at index {position}"
    return None


# --- the pods a Job creates -------------------------------------------------------------------------------
def pod_name_prefix(job_name: str, index: int | None) -> str:
    """`<job>-` or, for an index, `<job>-<index>-` (the job name cut to keep the index)."""
    if index is None:
        prefix = f"{job_name}-"
        return prefix if len(prefix) <= MAX_GENERATED_NAME_LENGTH else prefix[:MAX_GENERATED_NAME_LENGTH]
    suffix = f"-{index}-"
    prefix = job_name + suffix
    if len(prefix) > MAX_GENERATED_NAME_LENGTH:
        prefix = prefix[:MAX_GENERATED_NAME_LENGTH - len(suffix)] + suffix
    return prefix


def _add_index_env(container: Obj) -> None:
    env = container.setdefault("env", [])
    if any(isinstance(var, dict) and var.get("name") == COMPLETION_INDEX_ENV for var in env):
        return
    env.append({"name": COMPLETION_INDEX_ENV,
                "valueFrom": {"fieldRef": {"fieldPath": f"metadata.labels['{JOB_COMPLETION_INDEX}']"}}})


def pod_from_job(job: Obj, index: int | None = None) -> Obj:
    """The pod a Job creates: its template, the tracking finalizer, the Job's controller reference; for an
    Indexed Job the completion index as annotation and label, in JOB_COMPLETION_INDEX (a downward API
    reference to the label) and in the hostname `<job>-<index>`."""
    template = copy.deepcopy((job.get("spec") or {}).get("template") or {})
    template_meta = template.get("metadata") or {}
    spec = template.get("spec") or {}
    job_meta = job["metadata"]
    meta: Obj = {"generateName": pod_name_prefix(job_meta["name"], index), "namespace": job_meta["namespace"],
                 "ownerReferences": [owner_reference(job)]}
    for key in ("labels", "annotations"):
        if template_meta.get(key):
            meta[key] = dict(template_meta[key])
    finalizers = list(template_meta.get("finalizers") or [])
    if JOB_TRACKING_FINALIZER not in finalizers:
        finalizers.append(JOB_TRACKING_FINALIZER)
    meta["finalizers"] = finalizers
    if is_indexed(job):
        for key in ("initContainers", "containers"):
            for container in spec.get(key) or []:
                if isinstance(container, dict):
                    _add_index_env(container)
    if index is not None:
        meta.setdefault("annotations", {})[JOB_COMPLETION_INDEX] = str(index)
        meta.setdefault("labels", {})[JOB_COMPLETION_INDEX] = str(index)
        spec["hostname"] = f"{job_meta['name']}-{index}"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
