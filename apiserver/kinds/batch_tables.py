"""Table columns of batch/v1 Jobs and CronJobs, as kubectl 1.35's printers (`NAME STATUS COMPLETIONS DURATION
AGE` and `NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE`, + wide `CONTAINERS IMAGES SELECTOR`)."""
from __future__ import annotations

import datetime
from typing import Any

from apiserver.kinds.workload_tables import selector_string
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age, human_duration
from shipmate.timeutil import parse_rfc3339

Obj = dict[str, Any]

_CONTAINERS = Column("Containers", "string", "", "Names of each container in the template.", 1)
_IMAGES = Column("Images", "string", "", "Images referenced by each container in the template.", 1)
_SELECTOR = Column("Selector", "string", "", "A label query over pods that should match the pod count. Normally, "
                   "the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/"
                   "working-with-objects/labels/#label-selectors", 1)

JOB_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Status", "string", "", "Status of the job."),
    Column("Completions", "string", "", "The number of pods which reached phase Succeeded. The value increases "
           "monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed "
           "jobs."),
    Column("Duration", "string", "", "Time required to complete the job."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    _CONTAINERS, _IMAGES, _SELECTOR,
]

CRONJOB_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Schedule", "string", "", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
    Column("Timezone", "string", "", "The time zone name for the given schedule, see https://en.wikipedia.org/"
           "wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the "
           "kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded "
           "from the system-wide time zone database by the API server during CronJob validation and the controller "
           "manager during execution. If no system-wide time zone database can be found a bundled version of the "
           "database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due "
           "to a change in host configuration, the controller will stop creating new new Jobs and will create a "
           "system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/"
           "docs/concepts/workloads/controllers/cron-jobs/#time-zones"),
    Column("Suspend", "boolean", "", "This flag tells the controller to suspend subsequent executions, it does not "
           "apply to already started executions.  Defaults to false."),
    Column("Active", "integer", "", "A list of pointers to currently running jobs."),
    Column("Last Schedule", "string", "", "Information when was the last time the job was successfully "
           "scheduled."),
    Column("Age", "string", "", AGE_DESCRIPTION),
    _CONTAINERS, _IMAGES, _SELECTOR,
]


def _has_condition(obj: Obj, kind: str) -> bool:
    """hasJobCondition: a condition of that type with status True."""
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


def job_status_text(job: Obj) -> str:
    if _has_condition(job, "Complete"):
        return "Complete"
    if _has_condition(job, "Failed"):
        return "Failed"
    if job["metadata"].get("deletionTimestamp"):
        return "Terminating"
    if _has_condition(job, "Suspended"):
        return "Suspended"
    if _has_condition(job, "FailureTarget"):
        return "FailureTarget"
    return "Running"


def job_completions_text(job: Obj) -> str:
    spec, status = job.get("spec") or {}, job.get("status") or {}
    succeeded = status.get("succeeded", 0)
    if spec.get("completions") is not None:
        return f"{succeeded}/{spec['completions']}"
    parallelism = spec.get("parallelism") or 0
    return f"{succeeded}/1 of {parallelism}" if parallelism > 1 else f"{succeeded}/1"


def job_duration_text(job: Obj, now: datetime.datetime) -> str:
    status = job.get("status") or {}
    start = parse_rfc3339(status.get("startTime"))
    if start is None:
        return ""
    end = parse_rfc3339(status.get("completionTime"))
    return human_duration((end or now) - start)


def _template_cells(pod_template: Obj) -> tuple[str, str]:
    containers = ((pod_template or {}).get("spec") or {}).get("containers") or []
    return (",".join(c.get("name", "") for c in containers), ",".join(c.get("image", "") for c in containers))


def job_row(job: Obj, now: datetime.datetime) -> Row:
    spec = job.get("spec") or {}
    names, images = _template_cells(spec.get("template") or {})
    return Row([job["metadata"]["name"], job_status_text(job), job_completions_text(job),
                job_duration_text(job, now), age(job["metadata"].get("creationTimestamp"), now),
                names, images, selector_string(spec.get("selector")) or "<none>"])


def cronjob_row(cronjob: Obj, now: datetime.datetime) -> Row:
    spec, status = cronjob.get("spec") or {}, cronjob.get("status") or {}
    job_spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    names, images = _template_cells(job_spec.get("template") or {})
    last = age(status["lastScheduleTime"], now) if status.get("lastScheduleTime") else "<none>"
    suspend = spec.get("suspend")
    return Row([cronjob["metadata"]["name"], spec.get("schedule", ""),
                spec["timeZone"] if spec.get("timeZone") is not None else "<none>",
                "<unset>" if suspend is None else ("True" if suspend else "False"),
                len(status.get("active") or []), last, age(cronjob["metadata"].get("creationTimestamp"), now),
                names, images, selector_string(job_spec.get("selector")) or "<none>"])


def job_table(now: datetime.datetime) -> TableSpec:
    return TableSpec(JOB_COLUMNS, lambda obj: job_row(obj, now))


def cronjob_table(now: datetime.datetime) -> TableSpec:
    return TableSpec(CRONJOB_COLUMNS, lambda obj: cronjob_row(obj, now))
