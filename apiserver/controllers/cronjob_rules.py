"""What the CronJob controller decides (pure functions, as upstream's pkg/controller/cronjob): the most recent
schedule time still to be acted on, when to look again, the Job a schedule time starts (deterministically
named `<cronjob>-<minutes since the epoch>`), and which finished Jobs the history limits remove."""
from __future__ import annotations

import copy
import datetime
from dataclasses import dataclass
from typing import Any

from apiserver.controllers.job_rules import condition_true
from apiserver.controllers.ownership import owner_reference
from apiserver.cron import Schedule, load_zone
from apiserver.kinds.batch import CRONJOB_SCHEDULED_TIMESTAMP
from shipmate.timeutil import parse_rfc3339

Obj = dict[str, Any]
NEXT_SCHEDULE_DELTA = 0.1  # seconds added to every requeue, against clock skew
MANY_MISSED = 100
ZERO_TIME = datetime.datetime(1, 1, 1, tzinfo=datetime.timezone.utc)


@dataclass(frozen=True)
class RecentSchedule:
    earliest: datetime.datetime
    most_recent: datetime.datetime | None
    missed: str  # "none", "few" or "many"
    error: str | None = None


def _next(schedule: Schedule, moment: datetime.datetime) -> datetime.datetime | None:
    return schedule.next_after(moment)


def most_recent_schedule_time(cronjob: Obj, now: datetime.datetime, schedule: Schedule,
                              include_deadline: bool) -> RecentSchedule:
    """mostRecentScheduleTime: from the last schedule time (or creation, or now − startingDeadlineSeconds
    when later), the latest schedule time not after now, and how many were missed."""
    meta, spec, status = cronjob["metadata"], cronjob.get("spec") or {}, cronjob.get("status") or {}
    earliest = parse_rfc3339(status.get("lastScheduleTime")) or parse_rfc3339(meta.get("creationTimestamp")) or now
    deadline = spec.get("startingDeadlineSeconds")
    if include_deadline and deadline is not None:
        scheduling_deadline = now - datetime.timedelta(seconds=deadline)
        if scheduling_deadline > earliest:
            earliest = scheduling_deadline
    # A schedule with no time within five years (February 30th) gives Go's zero time, as upstream's library.
    t1 = _next(schedule, earliest) or ZERO_TIME
    if now < t1:
        return RecentSchedule(earliest, None, "none")
    t2 = (_next(schedule, t1) if t1 != ZERO_TIME else None) or ZERO_TIME
    if now < t2:
        return RecentSchedule(earliest, t1, "none")
    between = round((t2 - t1).total_seconds())
    if between < 1:
        return RecentSchedule(earliest, None, "none", "time difference between two schedules is less than 1 second")
    elapsed = int((now - t1).total_seconds())
    missed_count = elapsed // between + 1
    most_recent = None
    t = _next(schedule, t1 + datetime.timedelta(seconds=(missed_count - 2) * between))
    while t is not None and t <= now:
        most_recent = t
        t = _next(schedule, t)
    missed = "many" if missed_count > MANY_MISSED else "few" if missed_count > 0 else "none"
    return RecentSchedule(earliest, most_recent, missed)


def next_schedule_delay(cronjob: Obj, now: datetime.datetime, schedule: Schedule) -> float:
    """nextScheduleTimeDuration: seconds until the schedule time after the most recent one (+100 ms)."""
    recent = most_recent_schedule_time(cronjob, now, schedule, False)
    if recent.error is not None:
        base = now
    elif recent.most_recent is None:
        base = recent.earliest if recent.missed == "none" else now
    else:
        base = recent.most_recent
    upcoming = _next(schedule, base)
    if upcoming is None:
        return 3600.0 * 24  # no time within five years: look again tomorrow
    return (upcoming - now).total_seconds() + NEXT_SCHEDULE_DELTA


def job_name(cronjob: Obj, scheduled: datetime.datetime) -> str:
    return f"{cronjob['metadata']['name']}-{int(scheduled.timestamp()) // 60}"


def job_from_template(cronjob: Obj, scheduled: datetime.datetime) -> Obj:
    """getJobFromTemplate2: the template's labels, annotations (+ the scheduled time in the CronJob's zone) and
    spec, the deterministic name and the CronJob's controller reference."""
    spec = cronjob.get("spec") or {}
    template = copy.deepcopy(spec.get("jobTemplate") or {})
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    try:
        zone: datetime.tzinfo = load_zone(spec.get("timeZone") or "")
    except ValueError:
        zone = datetime.timezone.utc
    local = scheduled.astimezone(zone)
    annotations[CRONJOB_SCHEDULED_TIMESTAMP] = local.isoformat().replace("+00:00", "Z") \
        if local.utcoffset() == datetime.timedelta(0) else local.isoformat()
    meta: Obj = {"name": job_name(cronjob, scheduled), "namespace": cronjob["metadata"]["namespace"],
                 "annotations": annotations, "ownerReferences": [owner_reference(cronjob)]}
    if template_meta.get("labels"):
        meta["labels"] = dict(template_meta["labels"])
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": template.get("spec") or {}}


def finished_type(job: Obj) -> str | None:
    """"Complete" or "Failed" for a finished Job, else None."""
    for kind in ("Complete", "Failed"):
        if condition_true(job, kind):
            return kind
    return None


def job_reference(job: Obj) -> Obj:
    meta = job["metadata"]
    return {"kind": "Job", "namespace": meta.get("namespace", ""), "name": meta["name"], "uid": meta.get("uid", ""),
            "apiVersion": "batch/v1", "resourceVersion": meta.get("resourceVersion", "")}


def _start_key(job: Obj) -> tuple:
    start = parse_rfc3339((job.get("status") or {}).get("startTime"))
    return (start is None, start.timestamp() if start else 0.0, job["metadata"]["name"])


def jobs_beyond_history(jobs: list[Obj], limit: int) -> list[Obj]:
    """removeOldestJobs: the oldest (by start time, unstarted last, then name) beyond the limit."""
    excess = len(jobs) - limit
    return sorted(jobs, key=_start_key)[:excess] if excess > 0 else []


def rfc1123z(moment: datetime.datetime) -> str:
    """Go's time.RFC1123Z of a UTC time: "Mon, 02 Jan 2006 15:04:05 +0000"."""
    return moment.astimezone(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")

