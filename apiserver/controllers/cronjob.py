"""The CronJob controller (upstream's cronjob controller v2): at each schedule time (in `spec.timeZone`, UTC by
default) it creates a Job `<cronjob>-<minutes since the epoch>` from the template, honouring suspend,
startingDeadlineSeconds and concurrencyPolicy (Allow / Forbid / Replace), keeps `status.active`,
`lastScheduleTime` and `lastSuccessfulTime`, deletes finished Jobs beyond the history limits, and sleeps until
the next schedule time."""
from __future__ import annotations

import asyncio
import copy
import logging

from apiserver import errors
from apiserver.api import API
from apiserver.controllers import cronjob_rules as rules
from apiserver.controllers.keyed_controller import KeyedController
from apiserver.controllers.ownership import controller_ref
from apiserver.cron import CronError, load_zone, schedule_for
from apiserver.informer import RegistryInformer, SharedInformers, object_key
from apiserver.kinds.base import Obj
from apiserver.registry import DeleteOptions, utc_now
from shipmate.timeutil import rfc3339

log = logging.getLogger(__name__)

COMPONENT = "cronjob-controller"


class CronJobController(KeyedController):
    name = COMPONENT

    def __init__(self, api: API, informers: SharedInformers):
        super().__init__()
        self.api = api
        self.registry = api.registry("batch", "cronjobs")
        self.jobs_registry = api.registry("batch", "jobs")
        self.cronjobs = informers.informer(self.registry, self._on_cronjob)
        self.jobs = informers.informer(self.jobs_registry, self._on_job)
        self._schedules: dict[str, tuple[str, str | None]] = {}  # what each CronJob's schedule was last seen as

    def informers(self) -> list[RegistryInformer]:
        return [self.cronjobs, self.jobs]

    def all_keys(self) -> set[str]:
        return set(self.cronjobs.cache)

    # event handlers ------------------------------------------------------------------------------
    def _on_cronjob(self, event_type: str, cronjob: Obj, _old: Obj | None) -> None:
        key = object_key(cronjob)
        spec = cronjob.get("spec") or {}
        current = (spec.get("schedule", ""), spec.get("timeZone"))
        previous = self._schedules.get(key)
        if event_type == "DELETED":
            self._schedules.pop(key, None)
            return
        self._schedules[key] = current
        if previous is not None and previous != current:
            # A new schedule counts from its next time, not from times the old one left unmet.
            try:
                schedule = schedule_for(*current)
            except CronError:
                asyncio.ensure_future(self.api.record_event(
                    cronjob, "Warning", "UnParseableCronJobSchedule",
                    f"unparseable schedule for cronjob: {current[0]}", COMPONENT))
                return
            delay = rules.next_schedule_delay(cronjob, utc_now(), schedule)
            asyncio.get_running_loop().call_later(max(delay, 0), self.enqueue, key)
            return
        self.enqueue(key)

    def _on_job(self, _event_type: str, job: Obj, _old: Obj | None) -> None:
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != "CronJob":
            return
        key = f"{job['metadata'].get('namespace', '')}/{ref.get('name')}"
        cronjob = self.cronjobs.cache.get(key)
        if cronjob is not None and cronjob["metadata"].get("uid") == ref.get("uid"):
            self.enqueue(key)

    # sync ----------------------------------------------------------------------------------------
    async def sync_key(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        try:
            cronjob = await self.registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return
            raise
        jobs = [job for job in self.jobs.cache.values() if job["metadata"].get("namespace") == namespace
                and (controller_ref(job) or {}).get("name") == name]
        working = copy.deepcopy(cronjob)
        changed = await self._cleanup_finished(working, jobs)
        requeue, synced_change, error = await self._sync(working, jobs)
        if changed or synced_change:
            status = working.setdefault("status", {})
            if not status.get("active"):
                status.pop("active", None)
            await self.registry.update(namespace, name, working, subresource="status")
        if requeue is not None:
            asyncio.get_running_loop().call_later(max(requeue, 0.0), self.enqueue, key)
        if error is not None:
            raise error

    async def _event(self, cronjob: Obj, kind: str, reason: str, message: str) -> None:
        await self.api.record_event(cronjob, kind, reason, message, COMPONENT)

    async def _cleanup_finished(self, cronjob: Obj, jobs: list[Obj]) -> bool:
        spec = cronjob.get("spec") or {}
        successful_limit, failed_limit = spec.get("successfulJobsHistoryLimit"), spec.get("failedJobsHistoryLimit")
        if successful_limit is None and failed_limit is None:
            return False
        succeeded = [j for j in jobs if rules.finished_type(j) == "Complete"]
        failed = [j for j in jobs if rules.finished_type(j) == "Failed"]
        changed = False
        for group, limit in ((succeeded, successful_limit), (failed, failed_limit)):
            if limit is None:
                continue
            for job in rules.jobs_beyond_history(group, limit):
                if await self._delete_job(cronjob, job):
                    changed = True
        return changed

    async def _delete_job(self, cronjob: Obj, job: Obj) -> bool:
        meta = job["metadata"]
        try:
            await self.api.delete(self.jobs_registry, meta["namespace"], meta["name"],
                                  DeleteOptions(propagation_policy="Background"))
        except errors.APIError as exc:
            if exc.code != 404:
                await self._event(cronjob, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
                return False
        status = cronjob.setdefault("status", {})
        status["active"] = [ref for ref in status.get("active") or [] if ref.get("uid") != meta.get("uid")]
        await self._event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {meta['name']}")
        return True

    async def _get_job(self, namespace: str, name: str) -> Obj | None:
        try:
            return await self.jobs_registry.get(namespace, name)
        except errors.APIError as exc:
            if exc.code == 404:
                return None
            raise

    async def _sync(self, cronjob: Obj, jobs: list[Obj]) -> tuple[float | None, bool, Exception | None]:
        """syncCronJob: (seconds until the next look, whether status changed, the error that stopped it)."""
        now = utc_now()
        changed = False
        meta, spec = cronjob["metadata"], cronjob.get("spec") or {}
        status = cronjob.setdefault("status", {})

        def active_uids() -> set[str]:
            return {ref.get("uid") for ref in status.get("active") or []}
        children = set()
        for job in jobs:
            uid = job["metadata"].get("uid")
            children.add(uid)
            finished = rules.finished_type(job)
            if uid not in active_uids() and finished is None:
                fresh = await self.registry.get(meta["namespace"], meta["name"])
                if uid in {ref.get("uid") for ref in (fresh.get("status") or {}).get("active") or []}:
                    continue
                await self._event(cronjob, "Warning", "UnexpectedJob",
                                  f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}")
            elif uid in active_uids() and finished is not None:
                status["active"] = [ref for ref in status.get("active") or [] if ref.get("uid") != uid]
                await self._event(cronjob, "Normal", "SawCompletedJob",
                                  f"Saw completed job: {job['metadata']['name']}, status: {finished}")
                changed = True
            elif finished == "Complete":
                completed = (job.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if completed and (last is None or completed > last):
                    status["lastSuccessfulTime"] = completed
                    changed = True
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            if await self._get_job(ref.get("namespace") or meta["namespace"], ref.get("name", "")) is None:
                await self._event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref.get('name')}")
                status["active"] = [r for r in status.get("active") or [] if r.get("uid") != ref.get("uid")]
                changed = True

        if meta.get("deletionTimestamp"):
            return None, changed, None
        zone = spec.get("timeZone")
        if zone is not None:
            try:
                load_zone(zone)
            except CronError as exc:
                await self._event(cronjob, "Warning", "UnknownTimeZone", f'invalid timeZone: "{zone}": {exc}')
                return None, changed, None
        if spec.get("suspend"):
            return None, changed, None
        if "TZ" in spec.get("schedule", ""):
            await self._event(cronjob, "Warning", "UnsupportedSchedule",
                              f'CRON_TZ or TZ used in schedule "{spec.get("schedule")}" is not officially supported, '
                              "see https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/ for more details")
        try:
            schedule = schedule_for(spec.get("schedule", ""), zone)
        except CronError as exc:
            await self._event(cronjob, "Warning", "UnparseableSchedule",
                              f'unparseable schedule: "{spec.get("schedule")}" : {exc}')
            return None, changed, None
        recent = rules.most_recent_schedule_time(cronjob, now, schedule, True)
        if recent.error is not None:
            await self._event(cronjob, "Warning", "InvalidSchedule",
                              f"invalid schedule: {spec.get('schedule')} : {recent.error}")
            return None, changed, None
        if recent.most_recent is not None and recent.missed == "many":
            await self._event(cronjob, "Warning", "TooManyMissedTimes", "too many missed start times. Set or decrease "
                              ".spec.startingDeadlineSeconds or check clock skew")
        scheduled = recent.most_recent
        if scheduled is None:
            return rules.next_schedule_delay(cronjob, now, schedule), changed, None
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and (scheduled.timestamp() + deadline) < now.timestamp():
            await self._event(cronjob, "Warning", "MissSchedule",
                              f"Missed scheduled time to start a job: {rules.rfc1123z(scheduled)}")
            return rules.next_schedule_delay(cronjob, now, schedule), changed, None
        name = rules.job_name(cronjob, scheduled)
        if any(ref.get("name") == name for ref in status.get("active") or []) or \
                status.get("lastScheduleTime") == rfc3339(scheduled):
            return rules.next_schedule_delay(cronjob, now, schedule), changed, None
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and status.get("active"):
            await self._event(cronjob, "Normal", "JobAlreadyActive",
                              "Not starting job because prior execution is running and concurrency policy is Forbid")
            return rules.next_schedule_delay(cronjob, now, schedule), changed, None
        if policy == "Replace":
            for ref in list(status.get("active") or []):
                job = await self._get_job(ref.get("namespace") or meta["namespace"], ref.get("name", ""))
                if job is None:
                    await self._event(cronjob, "Warning", "FailedGet", f'Get job: jobs.batch "{ref.get("name")}" '
                                                                       "not found")
                    return None, changed, errors.not_found("batch", "jobs", ref.get("name", ""))
                if not await self._delete_job(cronjob, job):
                    return None, changed, RuntimeError(f"could not replace job {meta['namespace']}/{ref.get('name')}")
                changed = True
        request = rules.job_from_template(cronjob, scheduled)
        try:
            created = await self.api.create(self.jobs_registry, meta["namespace"], request)
        except errors.APIError as exc:
            if exc.code == 403 and "being terminated" in exc.message:
                return None, changed, exc
            if exc.code != 409:
                await self._event(cronjob, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
                return None, changed, exc
            created = await self._get_job(meta["namespace"], request["metadata"]["name"])
            if created is None:
                return None, changed, exc
            ref = controller_ref(created)
            if ref is None or ref.get("uid") != meta.get("uid"):
                return None, changed, None  # someone else's Job of that name
            if created["metadata"].get("uid") in active_uids():
                return None, changed, None
            log.info("job already exists cronjob=%s/%s job=%s", meta["namespace"], meta["name"], request["metadata"]["name"])
        else:
            await self._event(cronjob, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
        status.setdefault("active", []).append(rules.job_reference(created))
        status["lastScheduleTime"] = rfc3339(scheduled)
        return rules.next_schedule_delay(cronjob, now, schedule), True, None
