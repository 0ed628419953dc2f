"""The Job controller (upstream's pkg/controller/job): runs a Job's pods to completion.

Every pod it creates carries the `batch.kubernetes.io/job-tracking` finalizer, so a finished pod cannot
disappear before it is counted: its uid first goes to `status.uncountedTerminatedPods` (written), then the
finalizer is removed, then the uid moves into `succeeded`/`failed`. A crash between any two steps is repaired
by the next pass. The Job ends with `SuccessCriteriaMet`+`Complete` or `FailureTarget`+`Failed` (reasons
BackoffLimitExceeded, DeadlineExceeded, PodFailurePolicy) once no pod is left running or uncounted.
Failed pods are replaced after an exponential back-off (10 s doubling to 10 min); Indexed Jobs give each pod
a completion index (annotation, label, hostname `<job>-<i>`, env JOB_COMPLETION_INDEX); suspend deletes the
active pods. Pods left with the finalizer by a deleted or finished Job (`pod:<ns>/<name>` keys) lose it."""
from __future__ import annotations

import asyncio
import copy
import datetime
import logging
from dataclasses import dataclass, field

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import job_rules as rules
from apiserver.controllers.expectations import Expectations
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.ownership import Matcher, claim, controller_ref, labels_of, owner_reference
from apiserver.controllers.writes import modify, namespace_terminating
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.kinds.batch import JOB_CONTROLLER_NAME, JOB_TRACKING_FINALIZER, selector_matcher
from apiserver.registry import DeleteOptions, utc_now
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

COMPONENT = "job-controller"
ORPHAN_PREFIX = "pod:"


class FinalizerExpectations:
    """Pod uids whose tracking finalizer this controller removed, per Job, until the informer shows the pod
    without it (or gone): a lagging cache must not count a pod twice."""

    def __init__(self) -> None:
        self._uids: dict[str, set[str]] = {}

    def expect(self, key: str, uids: list[str]) -> None:
        self._uids.setdefault(key, set()).update(uids)

    def observed(self, key: str, uid: str) -> None:
        uids = self._uids.get(key)
        if uids is not None:
            uids.discard(uid)
            if not uids:
                del self._uids[key]

    def expected(self, key: str) -> set[str]:
        return set(self._uids.get(key, ()))

    def forget(self, key: str) -> None:
        self._uids.pop(key, None)


@dataclass
class _Pass:
    """One sync of one Job: the Job as this pass will write it back and what it learned about its pods."""
    key: str
    job: Obj
    pods: list[Obj]
    active_pods: list[Obj]
    expected_removals: set[str]
    now: datetime.datetime
    finished_condition: Obj | None = None
    succeeded: int = 0
    failed: int = 0
    ready: int = 0
    terminating: int = 0
    previous_indexes: rules.Intervals = field(default_factory=list)
    indexes: rules.Intervals = field(default_factory=list)
    backoff: rules.BackoffRecord = field(default_factory=rules.BackoffRecord)

    @property
    def status(self) -> Obj:
        return self.job.setdefault("status", {})

    @property
    def uncounted(self) -> Obj:
        return self.status.setdefault("uncountedTerminatedPods", {})


def _selector_matcher(job: Obj) -> Matcher | None:
    return selector_matcher((job.get("spec") or {}).get("selector"))


class JobController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.jobs_registry = api.registry("batch", "jobs")
        self.jobs = informers.informer(self.jobs_registry, self._on_job)
        self.pods = informers.informer(api.pods, self._on_pod)
        self.expectations = Expectations()
        self.finalizer_expectations = FinalizerExpectations()
        self.backoff: dict[str, rules.BackoffRecord] = {}

    def informers(self) -> list[RegistryInformer]:
        return [self.jobs, self.pods]

    def all_keys(self) -> set[str]:
        keys = set(self.jobs.cache)
        keys.update(ORPHAN_PREFIX + key for key, pod in list(self.pods.cache.items()) if self._orphaned(pod))
        return keys

    # event handlers ------------------------------------------------------------------------------
    def _on_job(self, event_type: str, job: Obj, _old: Obj | None) -> None:
        self.enqueue(object_key(job))
        if event_type == "DELETED" or rules.is_finished(job):
            self._cleanup_finalizers(job)

    def _cleanup_finalizers(self, job: Obj) -> None:
        """Pods of a deleted or finished Job that still carry the finalizer: removed by the orphan pass."""
        uid, namespace = job["metadata"].get("uid"), job["metadata"].get("namespace")
        for key, pod in list(self.pods.cache.items()):
            ref = controller_ref(pod)
            if pod["metadata"].get("namespace") == namespace and ref is not None and ref.get("uid") == uid \
                    and rules.has_tracking_finalizer(pod):
                self.enqueue(ORPHAN_PREFIX + key)

    def _job_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        job = self.jobs.cache.get(f"{pod['metadata'].get('namespace', '')}/{ref.get('name')}")
        return job if job is not None and job["metadata"].get("uid") == ref.get("uid") else None

    def _orphaned(self, pod: Obj) -> bool:
        """A pod with the tracking finalizer that no running Job of ours will count."""
        if not rules.has_tracking_finalizer(pod):
            return False
        ref = controller_ref(pod)
        if ref is not None and (ref.get("kind") != "Job" or ref.get("apiVersion") != "batch/v1"):
            return False
        job = self._job_of(pod)
        if job is not None and (job.get("spec") or {}).get("managedBy", JOB_CONTROLLER_NAME) != JOB_CONTROLLER_NAME:
            return False
        return job is None or rules.is_finished(job)

    def _on_pod(self, event_type: str, pod: Obj, _old: Obj | None) -> None:
        meta = pod["metadata"]
        namespace = meta.get("namespace", "")
        ref = controller_ref(pod)
        if ref is not None:
            if ref.get("kind") != "Job":
                return
            key = f"{namespace}/{ref.get('name')}"
            self.expectations.observe(key, event_type, meta["name"], meta.get("uid", ""),
                                      bool(meta.get("deletionTimestamp")))
            if event_type == "DELETED" or not rules.has_tracking_finalizer(pod):
                self.finalizer_expectations.observed(key, meta.get("uid", ""))
            if event_type != "DELETED" and self._orphaned(pod):
                self.enqueue(ORPHAN_PREFIX + object_key(pod))
            self.enqueue(key)
            return
        if event_type != "DELETED" and rules.has_tracking_finalizer(pod):
            self.enqueue(ORPHAN_PREFIX + object_key(pod))
        labels = labels_of(pod)
        for key, job in list(self.jobs.cache.items()):
            if job["metadata"].get("namespace") == namespace:
                matches = _selector_matcher(job)
                if matches is not None and matches(labels):
                    self.enqueue(key)  # an orphan it may adopt

    # orphan pods -------------------------------------------------------------------------------------
    async def _sync_orphan_pod(self, key: str) -> None:
        pod = self.pods.cache.get(key)
        if pod is None or not self._orphaned(pod):
            return
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> bool:
        """True once the pod has no tracking finalizer (or is gone)."""
        def without(current: Obj) -> Obj:
            finalizers = [f for f in current["metadata"].get("finalizers") or [] if f != JOB_TRACKING_FINALIZER]
            if finalizers:
                current["metadata"]["finalizers"] = finalizers
            else:
                current["metadata"].pop("finalizers", None)
            return current
        await modify(self.api.pods, pod, without)
        return True

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        if key.startswith(ORPHAN_PREFIX):
            await self._sync_orphan_pod(key[len(ORPHAN_PREFIX):])
            return
        namespace, _, name = key.partition("/")
        try:
            job = await self.jobs_registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                self.expectations.forget(key)
                self.finalizer_expectations.forget(key)
                self.backoff.pop(key, None)
                return
            raise
        spec = job.get("spec") or {}
        if spec.get("managedBy", JOB_CONTROLLER_NAME) != JOB_CONTROLLER_NAME:
            return  # another controller runs this Job
        if rules.is_finished(job):
            self.backoff.pop(key, None)
            return
        if spec.get("completionMode") not in (None, "NonIndexed", "Indexed"):
            await self.api.record_event(job, "Warning", "UnknownCompletionMode",
                                        "Skipped Job sync because completion mode is unknown", COMPONENT)
            return
        satisfied = self.expectations.satisfied(key)
        pods = await self._pods_for_job(job)
        now = utc_now()
        active = rules.active_pods(pods)
        state = _Pass(key, job, pods, active, self.finalizer_expectations.expected(key), now,
                      ready=rules.count_ready(active),
                      terminating=sum(1 for p in pods if rules.is_terminating(p)))
        await self._sync(state, satisfied)

    async def _pods_for_job(self, job: Obj) -> list[Obj]:
        """The namespace's pods this Job controls after adopting matching orphans (reference + finalizer)
        and releasing owned pods that stopped matching."""
        namespace = job["metadata"]["namespace"]
        matches = _selector_matcher(job)
        listed = [p for p in self.pods.cache.values() if p["metadata"].get("namespace") == namespace]
        if matches is None:
            return [p for p in listed if (controller_ref(p) or {}).get("uid") == job["metadata"]["uid"]]
        result = claim(job, matches, listed, lambda pod: True)
        released = {p["metadata"]["uid"] for p in result.release}
        uid = job["metadata"]["uid"]

        def adopt(pod: Obj) -> Obj:
            meta = pod["metadata"]
            if controller_ref(pod) is None and matches(labels_of(pod)) and not meta.get("deletionTimestamp"):
                meta.setdefault("ownerReferences", []).append(owner_reference(job))
                if JOB_TRACKING_FINALIZER not in (meta.get("finalizers") or []):
                    meta.setdefault("finalizers", []).append(JOB_TRACKING_FINALIZER)
            return pod

        def release(pod: Obj) -> Obj:
            refs = [r for r in pod["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                pod["metadata"]["ownerReferences"] = refs
            else:
                pod["metadata"].pop("ownerReferences", None)
            return pod
        adopted: dict[str, Obj] = {}
        for pod in result.adopt:
            stored = await modify(self.api.pods, pod, adopt)
            if stored is not None and (controller_ref(stored) or {}).get("uid") == uid:
                adopted[stored["metadata"]["uid"]] = stored
        for pod in result.release:
            await modify(self.api.pods, pod, release)
        owned = []
        for pod in result.owned:
            pod_uid = pod["metadata"]["uid"]
            if pod_uid in released:
                continue
            if controller_ref(pod) is None:
                if pod_uid not in adopted:
                    continue
                pod = adopted[pod_uid]
            owned.append(pod)
        return owned

    async def _sync(self, state: _Pass, satisfied: bool) -> None:
        job, key, now = state.job, state.key, state.now
        spec = job.get("spec") or {}
        status = state.status
        uncounted = state.uncounted
        active = len(state.active_pods)
        new_succeeded, new_failed = self._new_finished_pods(state)
        state.succeeded = status.get("succeeded", 0) + len(new_succeeded) + len(uncounted.get("succeeded") or [])
        state.failed = status.get("failed", 0) + rules.counted_failures(job, new_failed) + \
            len(uncounted.get("failed") or [])
        if not status.get("startTime") and not rules.is_suspended(job):
            status["startTime"] = rfc3339(now)
        state.backoff = rules.new_backoff_record(self.backoff.get(key), new_succeeded, new_failed)

        success_met = rules.find_condition(job, "SuccessCriteriaMet")
        if success_met is not None and success_met.get("status") == "True":
            state.finished_condition = success_met
        else:
            target = rules.find_condition(job, "FailureTarget")
            if target is not None and target.get("status") == "True":
                state.finished_condition = rules.new_condition("Failed", "True", target.get("reason", ""),
                                                               target.get("message", ""), now)
            else:
                message = rules.fail_job_message(job, state.pods)
                if message is not None:
                    state.finished_condition = rules.new_condition("FailureTarget", "True", "PodFailurePolicy",
                                                                   message, now)
        if state.finished_condition is None:
            left = rules.seconds_until_deadline(job, now)
            if state.failed > spec.get("backoffLimit", 6) or rules.past_backoff_limit_on_failure(job, state.pods):
                state.finished_condition = rules.new_condition(
                    "FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
            elif left is not None and left <= 0:
                state.finished_condition = rules.new_condition(
                    "FailureTarget", "True", "DeadlineExceeded", "Job was active longer than specified deadline", now)
            elif left is not None:
                asyncio.get_running_loop().call_later(left + 0.05, self.enqueue, key)

        if rules.is_indexed(job):
            state.previous_indexes, state.indexes = rules.succeeded_indexes(job, state.pods)
            state.succeeded = rules.total(state.indexes)
            if state.finished_condition is None:
                message = rules.match_success_policy(spec.get("successPolicy"), spec.get("completions") or 0,
                                                     state.indexes)
                if message is not None:
                    state.finished_condition = rules.new_condition("SuccessCriteriaMet", "True", "SuccessPolicy",
                                                                   message, now)

        suspend_changed = False
        manage_error: Exception | None = None
        if state.finished_condition is not None:
            deleted_ready, deleted, manage_error = await self._delete_pods(state, state.active_pods,
                                                                           remove_finalizers=False)
            if deleted != active or not satisfied:
                state.finished_condition = None  # pods (or their finalizers) are still to go
            active -= deleted
            state.terminating += deleted
            state.ready -= deleted_ready
        else:
            managed = False
            if satisfied and not job["metadata"].get("deletionTimestamp"):
                active, manage_error = await self._manage(state)
                managed = True
            if rules.is_complete(job, state.succeeded, active):
                state.finished_condition = rules.new_condition(
                    "SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods",
                    now)
            elif managed:
                conditions = status.setdefault("conditions", [])
                if rules.is_suspended(job):
                    if rules.ensure_condition(conditions, "Suspended", "True", "JobSuspended", "Job suspended", now):
                        suspend_changed = True
                        await self.api.record_event(job, "Normal", "Suspended", "Job suspended", COMPONENT)
                elif rules.ensure_condition(conditions, "Suspended", "False", "JobResumed", "Job resumed", now):
                    suspend_changed = True
                    await self.api.record_event(job, "Normal", "Resumed", "Job resumed", COMPONENT)
                    status["startTime"] = rfc3339(now)  # the deadline counts from the resume
                if not conditions:
                    status.pop("conditions")

        needs_flush = suspend_changed or active != status.get("active", 0) or state.ready != status.get("ready") \
            or state.terminating != status.get("terminating")
        if active:
            status["active"] = active
        else:
            status.pop("active", None)
        status["ready"] = max(state.ready, 0)
        status["terminating"] = state.terminating
        await self._track_status(state, needs_flush)
        if manage_error is not None:
            raise manage_error

    def _new_finished_pods(self, state: _Pass) -> tuple[list[Obj], list[Obj]]:
        """getNewFinishedPods: finished pods still carrying the finalizer and not yet in uncounted."""
        uncounted = state.uncounted
        counted_succeeded, counted_failed = set(uncounted.get("succeeded") or []), set(uncounted.get("failed") or [])
        completions = (state.job.get("spec") or {}).get("completions") or 0
        succeeded, failed = [], []
        for pod in state.pods:
            uid = pod["metadata"]["uid"]
            if not rules.has_tracking_finalizer(pod) or uid in state.expected_removals:
                continue
            if rules.is_indexed(state.job) and not 0 <= rules.completion_index(pod) < completions:
                continue
            if rules.phase(pod) == "Succeeded" and uid not in counted_succeeded:
                succeeded.append(pod)
            elif rules.is_pod_failed(pod, state.job) and uid not in counted_failed:
                failed.append(pod)
        return succeeded, failed

    # managing pods ---------------------------------------------------------------------------------
    async def _manage(self, state: _Pass) -> tuple[int, Exception | None]:
        """manageJob: delete surplus pods (or all while suspended), else create the missing ones after the
        failure back-off. Returns the active count and the error that stopped it."""
        job, key = state.job, state.key
        active = len(state.active_pods)
        if rules.is_suspended(job):
            ready, removed, error = await self._delete_pods(state, state.active_pods, remove_finalizers=True)
            state.terminating += removed
            state.ready -= ready
            return active - removed, error
        want = rules.want_active(job, active, state.succeeded)
        doomed = rules.active_pods_for_removal(job, state.active_pods, max(active - want, 0))
        doomed = doomed[:rules.MAX_POD_CREATE_DELETE_PER_SYNC]
        if doomed:
            ready, removed, error = await self._delete_pods(state, doomed, remove_finalizers=True)
            state.terminating += removed
            state.ready -= ready
            return active - removed, error
        terminating = state.terminating if rules.only_replace_failed_pods(job) else 0
        diff = want - terminating - active
        if diff <= 0:
            return active, None
        wait = rules.remaining_backoff(state.backoff, state.now)
        if wait > 0:
            asyncio.get_running_loop().call_later(max(wait, 1.0), self.enqueue, key)
            return active, None
        diff = min(diff, rules.MAX_POD_CREATE_DELETE_PER_SYNC)
        indexes: list[int | None] = [None] * diff
        if rules.is_indexed(job):
            indexes = list(rules.first_pending_indexes(state.active_pods, state.indexes, diff,
                                                       (job.get("spec") or {}).get("completions") or 0))
        created, error = await self._create_pods(job, key, indexes)
        return active + created, error

    async def _create_pods(self, job: Obj, key: str, indexes: list[int | None]) -> tuple[int, Exception | None]:
        """Slow start as upstream: batches of 1, 2, 4, …; a batch with a failure stops the rest."""
        namespace = job["metadata"]["namespace"]
        created, position, batch = 0, 0, 1
        while position < len(indexes):
            chunk = indexes[position:position + batch]
            results = await asyncio.gather(*(self.api.create(self.api.pods, namespace, rules.pod_from_job(job, index))
                                             for index in chunk), return_exceptions=True)
            failure: Exception | None = None
            for result in results:
                if isinstance(result, errors.APIError):
                    if namespace_terminating(result):
                        return created, None
                    failure = result
                    await self.api.record_event(job, "Warning", "FailedCreate", f"Error creating: {result.message}",
                                                COMPONENT)
                elif isinstance(result, BaseException):
                    raise result
                else:
                    created += 1
                    if object_key(result) not in self.pods.cache:
                        self.expectations.expect_create(key, result["metadata"]["name"])
                    await self.api.record_event(job, "Normal", "SuccessfulCreate",
                                                f"Created pod: {result['metadata']['name']}", COMPONENT)
            if failure is not None:
                return created, failure
            position += len(chunk)
            batch *= 2
        return created, None

    async def _delete_pods(self, state: _Pass, pods: list[Obj], remove_finalizers: bool
                           ) -> tuple[int, int, Exception | None]:
        """Deletes pods (removing their finalizer first when they need no counting: surplus or suspended
        pods); returns (ready ones deleted, deleted, the first error)."""
        job, key = state.job, state.key

        async def delete(pod: Obj) -> Exception | None:
            meta = pod["metadata"]
            try:
                if remove_finalizers and rules.has_tracking_finalizer(pod):
                    self.finalizer_expectations.expect(key, [meta["uid"]])
                    await self._remove_finalizer(pod)
                await self.api.delete(self.api.pods, meta["namespace"], meta["name"],
                                      DeleteOptions(precondition_uid=meta["uid"]))
            except errors.APIError as exc:
                if exc.code == 404:
                    return None
                if exc.code != 409:
                    await self.api.record_event(job, "Warning", "FailedDelete", f"Error deleting: {exc.message}",
                                                COMPONENT)
                return exc
            cached = self.pods.cache.get(object_key(pod))
            if cached is not None and cached["metadata"].get("uid") == meta["uid"] and \
                    not cached["metadata"].get("deletionTimestamp"):
                self.expectations.expect_delete(key, meta["uid"])
            await self.api.record_event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {meta['name']}", COMPONENT)
            return None
        results = await asyncio.gather(*(delete(pod) for pod in pods))
        deleted = ready = 0
        first: Exception | None = None
        for pod, error in zip(pods, results):
            if error is None:
                deleted += 1
                if rules.is_pod_ready(pod):
                    ready += 1
            elif first is None:
                first = error
        return ready, deleted, first

    # status ----------------------------------------------------------------------------------------
    async def _track_status(self, state: _Pass, needs_flush: bool) -> None:
        """trackJobStatusAndRemoveFinalizers: finished pods go to uncountedTerminatedPods (written), lose the
        finalizer, then move into the counters; the terminal condition comes once nothing is uncounted or
        terminating."""
        job, key, now = state.job, state.key, state.now
        status, uncounted = state.status, state.uncounted
        indexed = rules.is_indexed(job)
        completions = (job.get("spec") or {}).get("completions") or 0
        pods = sorted(state.pods, key=rules.completion_index) if indexed else state.pods
        with_finalizer = {p["metadata"]["uid"] for p in pods
                          if rules.has_tracking_finalizer(p) and p["metadata"]["uid"] not in state.expected_removals}
        if _clean_uncounted(status, with_finalizer):
            needs_flush = True
        counted_failed = set(uncounted.get("failed") or [])
        to_remove: list[Obj] = []
        new_indexes: list[int] = []
        reached_max = False
        policy = (job.get("spec") or {}).get("podFailurePolicy")
        finished = state.finished_condition
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if not rules.has_tracking_finalizer(pod) or uid in state.expected_removals:
                continue
            failed = rules.is_pod_failed(pod, job)
            if not (job["metadata"].get("deletionTimestamp") or finished is not None
                    or rules.phase(pod) == "Succeeded" or failed):
                continue
            to_remove.append(pod)
            if rules.phase(pod) == "Succeeded" and uid not in counted_failed:
                if indexed:
                    index = rules.completion_index(pod)
                    if 0 <= index < completions and not rules.contains(state.previous_indexes, index):
                        new_indexes.append(index)
                        needs_flush = True
                elif uid not in (uncounted.get("succeeded") or []):
                    uncounted.setdefault("succeeded", []).append(uid)
                    needs_flush = True
            elif failed or (finished is not None and finished.get("type") != "SuccessCriteriaMet"):
                index = rules.completion_index(pod)
                if uid not in counted_failed and (not indexed or 0 <= index < completions):
                    if rules.match_pod_failure_policy(policy, pod)[1]:
                        uncounted.setdefault("failed", []).append(uid)
                        counted_failed.add(uid)
                        needs_flush = True
            if len(new_indexes) + len(uncounted.get("succeeded") or []) + len(uncounted.get("failed") or []) \
                    >= rules.MAX_UNCOUNTED_PODS:
                reached_max = True
                break
        if indexed:
            state.indexes = rules.with_indexes(state.indexes, new_indexes)
            text = rules.format_intervals(state.indexes)
            if text != (status.get("completedIndexes") or ""):
                needs_flush = True
            status["succeeded"] = rules.total(state.indexes)
            if text:
                status["completedIndexes"] = text
            else:
                status.pop("completedIndexes", None)
            if not status["succeeded"]:
                status.pop("succeeded")
        if finished is not None and finished.get("type") == "FailureTarget":
            status.setdefault("conditions", []).append(finished)
            needs_flush = True
            finished = state.finished_condition = rules.new_condition(
                "Failed", "True", finished.get("reason", ""), finished.get("message", ""), now)
        if finished is not None and finished.get("type") == "SuccessCriteriaMet":
            if not rules.condition_true(job, "SuccessCriteriaMet"):
                status.setdefault("conditions", []).append(finished)
                needs_flush = True
            finished = state.finished_condition = rules.new_condition(
                "Complete", "True", finished.get("reason", ""), finished.get("message", ""), now)

        if needs_flush:
            await self._write_status(state)
            self.backoff[key] = state.backoff
            needs_flush = False
        removal_error: Exception | None = None
        if to_remove:
            self.finalizer_expectations.expect(key, [p["metadata"]["uid"] for p in to_remove])
            outcomes = await asyncio.gather(*(self._remove_finalizer_reporting(p) for p in to_remove))
            for pod, outcome in zip(to_remove, outcomes):
                if outcome is None:
                    with_finalizer.discard(pod["metadata"]["uid"])
                else:
                    self.finalizer_expectations.observed(key, pod["metadata"]["uid"])
                    removal_error = removal_error or outcome
        if _clean_uncounted(state.status, with_finalizer):
            needs_flush = True
        if removal_error is not None:
            if needs_flush:
                await self._write_status(state)
            raise removal_error
        if not reached_max and self._enact_finished(state):
            needs_flush = True
            await self._write_status(state)
            await self._record_finished(state)
            return
        if needs_flush:
            await self._write_status(state)

    async def _remove_finalizer_reporting(self, pod: Obj) -> Exception | None:
        try:
            await self._remove_finalizer(pod)
        except errors.APIError as exc:
            return exc
        return None

    def _enact_finished(self, state: _Pass) -> bool:
        """The terminal condition, once no pod is uncounted or terminating."""
        finished = state.finished_condition
        if finished is None:
            return False
        uncounted = state.uncounted
        if uncounted.get("succeeded") or uncounted.get("failed") or state.terminating > 0:
            return False
        conditions = state.status.setdefault("conditions", [])
        rules.ensure_condition(conditions, finished["type"], finished["status"], finished.get("reason", ""),
                               finished.get("message", ""), state.now)
        if finished["type"] == "Complete":
            state.status["completionTime"] = next(c for c in conditions if c["type"] == "Complete")["lastTransitionTime"]
        state.status.pop("active", None)
        return True

    async def _record_finished(self, state: _Pass) -> None:
        job, finished = state.job, state.finished_condition
        assert finished is not None
        if finished["type"] == "Complete":
            completions = (job.get("spec") or {}).get("completions")
            if completions is not None and (job.get("status") or {}).get("succeeded", 0) > completions:
                await self.api.record_event(job, "Warning", "TooManySucceededPods",
                                            "Too many succeeded pods running after completion count reached", COMPONENT)
            await self.api.record_event(job, "Normal", "Completed", "Job completed", COMPONENT)
        else:
            await self.api.record_event(job, "Warning", finished.get("reason", ""), finished.get("message", ""),
                                        COMPONENT)
        self.backoff.pop(state.key, None)

    async def _write_status(self, state: _Pass) -> None:
        """PUT /status with the resourceVersion this pass read (a conflict retries the whole pass)."""
        job = copy.deepcopy(state.job)
        status = job.setdefault("status", {})
        status["uncountedTerminatedPods"] = {k: v for k, v in (status.get("uncountedTerminatedPods") or {}).items()
                                             if v}
        meta = job["metadata"]
        stored, _ = await self.jobs_registry.update(meta["namespace"], meta["name"], job, subresource="status")
        stored_status = stored.get("status") or {}
        state.job = stored
        stored["status"] = stored_status
        stored_status.setdefault("uncountedTerminatedPods", {})


def _clean_uncounted(status: Obj, with_finalizer: set[str]) -> bool:
    """cleanUncountedPodsWithoutFinalizers: uids whose pods lost the finalizer move into the counters."""
    uncounted = status.setdefault("uncountedTerminatedPods", {})
    changed = False
    for kind, counter in (("succeeded", "succeeded"), ("failed", "failed")):
        uids = uncounted.get(kind) or []
        kept = [uid for uid in uids if uid in with_finalizer]
        if len(kept) != len(uids):
            changed = True
            status[counter] = status.get(counter, 0) + len(uids) - len(kept)
            if kept:
                uncounted[kind] = kept
            else:
                uncounted.pop(kind, None)
    return changed
