"""Pure decisions of the Job controller: indexes, removal order, back-off, failure and success policies, the pods
it creates."""
from __future__ import annotations

import datetime

import pytest

from apiserver.controllers import job_rules as rules

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
JOB = {"apiVersion": "batch/v1", "kind": "Job",
       "metadata": {"name": "pi", "namespace": "ns", "uid": "job-1"},
       "spec": {"completions": 5, "parallelism": 2, "backoffLimit": 6, "completionMode": "NonIndexed",
                "template": {"metadata": {"labels": {"job-name": "pi"}, "annotations": {"a": "b"}},
                             "spec": {"restartPolicy": "Never",
                                      "containers": [{"name": "c", "image": "busybox"}],
                                      "initContainers": [{"name": "i", "image": "busybox",
                                                          "env": [{"name": "X", "value": "1"}]}]}}}}


def ago(seconds: float) -> str:
    return (NOW - datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod(name, phase="Running", *, index=None, node="n1", ready=False, created=100, finished=None, deleting=False,
        restarts=0, finalizer=True, exit_code=None, conditions=()):
    meta = {"name": name, "uid": f"uid-{name}", "namespace": "ns", "creationTimestamp": ago(created)}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if finalizer:
        meta["finalizers"] = ["batch.kubernetes.io/job-tracking"]
    if deleting:
        meta["deletionTimestamp"] = ago(0)
        meta["deletionGracePeriodSeconds"] = 30
    status = {"phase": phase, "conditions": list(conditions),
              "containerStatuses": [{"name": "c", "restartCount": restarts, "state": {}}]}
    if ready:
        status["conditions"].append({"type": "Ready", "status": "True", "lastTransitionTime": ago(50)})
    if finished is not None:
        status["containerStatuses"][0]["state"] = {"terminated": {"exitCode": exit_code or 0,
                                                                  "finishedAt": ago(finished)}}
    return {"metadata": meta, "spec": {"nodeName": node}, "status": status}


def job(**spec):
    return {**JOB, "spec": {**JOB["spec"], **spec}}


def test_intervals_parse_merge_and_format():
    assert rules.parse_intervals("0-2,5,7-9", 9) == [(0, 2), (5, 5), (7, 8)]
    assert rules.parse_intervals("1,2,3,x,6", 10) == [(1, 3), (6, 6)]
    assert rules.parse_intervals("", 3) == []
    merged = rules.with_indexes([(0, 2), (5, 5)], [4, 3, 9])
    assert merged == [(0, 5), (9, 9)]
    assert rules.format_intervals(merged) == "0-5,9"
    assert rules.format_intervals([(1, 2), (4, 4), (6, 9)]) == "1,2,4,6-9"  # a pair is written out, as upstream
    assert rules.total([(0, 5), (9, 9)]) == 7 and rules.contains([(0, 5)], 5) and not rules.contains([(0, 5)], 6)


def test_first_pending_indexes_skip_succeeded_and_active():
    active = [pod("a", index=1), pod("b", index=4)]
    assert rules.first_pending_indexes(active, [(0, 0), (2, 2)], 3, 8) == [3, 5, 6]
    assert rules.first_pending_indexes(active, [(0, 0), (2, 2)], 10, 6) == [3, 5]
    assert rules.first_pending_indexes([], [], 2, 5) == [0, 1]


def test_succeeded_indexes_count_only_tracked_pods_in_range():
    indexed = job(completionMode="Indexed", completions=4)
    indexed["status"] = {"completedIndexes": "0"}
    pods = [pod("a", "Succeeded", index=1), pod("b", "Succeeded", index=2, finalizer=False),
            pod("c", "Succeeded", index=7), pod("d", "Failed", index=3)]
    previous, now = rules.succeeded_indexes(indexed, pods)
    assert previous == [(0, 0)] and now == [(0, 1)]


def test_removal_order_and_duplicated_indexes():
    pods = [pod("ready-old", ready=True, created=500), pod("pending", "Pending"),
            pod("unscheduled", "Pending", node=""), pod("running", created=50), pod("restarts", restarts=3)]
    order = [p["metadata"]["name"] for p in rules.active_pods_for_removal(job(), pods, 5)]
    assert order == ["unscheduled", "pending", "restarts", "running", "ready-old"]
    indexed = job(completionMode="Indexed", completions=3)
    dupes = [pod("i0", index=0), pod("i1a", index=1, ready=True), pod("i1b", index=1), pod("i9", index=9),
             pod("none")]
    removed = {p["metadata"]["name"] for p in rules.active_pods_for_removal(indexed, dupes, 0)}
    assert removed == {"i1b", "i9", "none"}


def test_pod_failed_and_terminating():
    assert rules.is_pod_failed(pod("f", "Failed"), job())
    deleted = pod("d", deleting=True)
    assert rules.is_pod_failed(deleted, job()) and rules.is_terminating(deleted)
    # with podReplacementPolicy Failed a deleted pod is not failed until it says so
    assert not rules.is_pod_failed(deleted, job(podReplacementPolicy="Failed"))
    assert not rules.is_terminating(pod("s", "Succeeded", deleting=True))


def test_backoff_grows_exponentially_and_resets_on_success():
    assert [rules.backoff_delay(n) for n in range(0, 8)] == [0, 10, 20, 40, 80, 160, 320, 600]
    record = rules.new_backoff_record(None, [], [pod("a", "Failed", finished=30)])
    assert record.failures_after_last_success == 1
    assert rules.remaining_backoff(record, NOW) == pytest.approx(0)  # 10 s back-off, failed 30 s ago
    record = rules.new_backoff_record(record, [], [pod("b", "Failed", finished=5), pod("c", "Failed", finished=4)])
    assert record.failures_after_last_success == 3
    assert rules.remaining_backoff(record, NOW) == pytest.approx(36)  # 40 s after the last failure (4 s ago)
    after_success = rules.new_backoff_record(record, [pod("s", "Succeeded", finished=3)], [pod("x", "Failed", finished=1)])
    assert after_success.failures_after_last_success == 1
    assert rules.new_backoff_record(record, [pod("s", "Succeeded", finished=3)], []).failures_after_last_success == 0


def test_finished_time_falls_back_through_ready_condition_deletion_and_creation():
    assert rules.finished_time(pod("a", finished=10)) == NOW - datetime.timedelta(seconds=10)
    not_ready = pod("b", conditions=[{"type": "Ready", "status": "False", "lastTransitionTime": ago(20)}])
    assert rules.finished_time(not_ready) == NOW - datetime.timedelta(seconds=20)
    assert rules.finished_time(pod("c", deleting=True)) == NOW - datetime.timedelta(seconds=30)
    assert rules.finished_time(pod("d", created=40)) == NOW - datetime.timedelta(seconds=40)


def test_pod_failure_policy():
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In", "values": [42]}},
                        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                        {"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}
    failed42 = pod("p", "Failed", finished=1, exit_code=42)
    assert rules.match_pod_failure_policy(policy, failed42) == (
        "Container c for pod ns/p failed with exit code 42 matching FailJob rule at index 0", True, "FailJob")
    evicted = pod("e", "Failed", conditions=[{"type": "DisruptionTarget", "status": "True"}], finished=1, exit_code=1)
    assert rules.match_pod_failure_policy(policy, evicted) == (None, False, "Ignore")
    assert rules.match_pod_failure_policy(policy, pod("x", "Failed", finished=1, exit_code=3)) == (None, True, "Count")
    assert rules.match_pod_failure_policy(policy, pod("y", "Failed", finished=1, exit_code=1)) == (None, True, None)
    policed = job(podFailurePolicy=policy)
    assert rules.fail_job_message(policed, [pod("ok"), failed42]).startswith("Container c for pod ns/p")
    assert rules.counted_failures(policed, [evicted, failed42]) == 1


def test_backoff_limit_on_failure_counts_restarts():
    on_failure = job(backoffLimit=2)
    on_failure["spec"]["template"] = {"spec": {"restartPolicy": "OnFailure"}}
    assert not rules.past_backoff_limit_on_failure(on_failure, [pod("a", restarts=1)])
    assert rules.past_backoff_limit_on_failure(on_failure, [pod("a", restarts=1), pod("b", "Pending", restarts=1)])
    assert not rules.past_backoff_limit_on_failure(job(), [pod("a", restarts=9)])  # Never: failures count instead


def test_want_active_and_completion():
    assert rules.want_active(job(), 0, 0) == 2
    assert rules.want_active(job(), 2, 4) == 1          # one completion left
    assert rules.want_active(job(), 0, 5) == 0
    queue = job(completions=None, parallelism=3)
    assert rules.want_active(queue, 1, 0) == 3 and rules.want_active(queue, 1, 1) == 1
    assert rules.is_complete(job(), 5, 0) and not rules.is_complete(job(), 5, 1) and not rules.is_complete(job(), 4, 0)
    assert rules.is_complete(queue, 1, 0) and not rules.is_complete(queue, 0, 0)


def test_deadline_and_conditions():
    started = job(activeDeadlineSeconds=60)
    started["status"] = {"startTime": ago(45)}
    assert rules.seconds_until_deadline(started, NOW) == pytest.approx(15)
    assert rules.seconds_until_deadline(job(), NOW) is None
    conditions = []
    assert not rules.ensure_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", NOW)
    assert rules.ensure_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", NOW)
    assert conditions[0]["lastProbeTime"] == conditions[0]["lastTransitionTime"] == "2026-01-01T12:00:00Z"
    assert rules.ensure_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", NOW)
    assert conditions[0]["status"] == "False"


def test_success_policy():
    policy = {"rules": [{"succeededIndexes": "0-2", "succeededCount": 2}, {"succeededCount": 4}]}
    assert rules.match_success_policy(policy, 5, [(0, 0)]) is None
    assert rules.match_success_policy(policy, 5, [(1, 2)]) == "Matched rules at index 0"
    assert rules.match_success_policy({"rules": [{"succeededCount": 4}]}, 5, [(0, 1), (3, 4)]) == \
        "Matched rules at index 0"


def test_pod_from_job():
    made = rules.pod_from_job(job())
    meta = made["metadata"]
    assert meta["generateName"] == "pi-" and meta["labels"] == {"job-name": "pi"} and meta["annotations"] == {"a": "b"}
    assert meta["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert meta["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "pi", "uid": "job-1",
                                        "controller": True, "blockOwnerDeletion": True}]
    assert "env" not in made["spec"]["containers"][0]

    indexed = rules.pod_from_job(job(completionMode="Indexed"), 3)
    meta, spec = indexed["metadata"], indexed["spec"]
    assert meta["generateName"] == "pi-3-" and spec["hostname"] == "pi-3"
    assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == "3"
    assert meta["labels"]["batch.kubernetes.io/job-completion-index"] == "3"
    index_env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
        "fieldPath": "metadata.labels['batch.kubernetes.io/job-completion-index']"}}}
    assert spec["containers"][0]["env"] == [index_env]
    assert spec["initContainers"][0]["env"] == [{"name": "X", "value": "1"}, index_env]
    assert JOB["spec"]["template"]["spec"]["initContainers"][0]["env"] == [{"name": "X", "value": "1"}]  # untouched
    long_name = "x" * 60
    assert rules.pod_name_prefix(long_name, 12) == "x" * 54 + "-12-"
    assert len(rules.pod_name_prefix(long_name, None)) == 58
