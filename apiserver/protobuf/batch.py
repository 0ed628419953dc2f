"""Protobuf schemas (upstream generated.proto field numbers) for batch/v1 Job and CronJob, which `kubectl create
job|cronjob` (and `create job --from=cronjob/x`, with the CronJob's whole template) send as protobuf."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field
from apiserver.protobuf.podspec import POD_TEMPLATE_SPEC
from apiserver.protobuf.workloads import LABEL_SELECTOR


def _p(name: str, kind: str, schema: dict | None = None) -> Field:
    """A pointer field: its zero value (backoffLimit 0, suspend false, ...) is kept."""
    return Field(name, kind, schema, keep_zero=True)


_EXIT_CODES = {1: _p("containerName", "string"), 2: Field("operator", "string"),
               3: Field("values", "int", repeated=True)}
_POD_CONDITION_PATTERN = {1: Field("type", "string"), 2: Field("status", "string")}
POD_FAILURE_POLICY = {1: Field("rules", "message", {
    1: Field("action", "string"), 2: Field("onExitCodes", "message", _EXIT_CODES),
    3: Field("onPodConditions", "message", _POD_CONDITION_PATTERN, repeated=True)}, repeated=True)}
SUCCESS_POLICY = {1: Field("rules", "message", {1: _p("succeededIndexes", "string"), 2: _p("succeededCount", "int")},
                           repeated=True)}
JOB_SPEC = {
    1: _p("parallelism", "int"), 2: _p("completions", "int"), 3: _p("activeDeadlineSeconds", "int"),
    11: Field("podFailurePolicy", "message", POD_FAILURE_POLICY), 16: Field("successPolicy", "message", SUCCESS_POLICY),
    7: _p("backoffLimit", "int"), 12: _p("backoffLimitPerIndex", "int"), 13: _p("maxFailedIndexes", "int"),
    4: Field("selector", "message", LABEL_SELECTOR), 5: _p("manualSelector", "bool"),
    6: Field("template", "message", POD_TEMPLATE_SPEC), 8: _p("ttlSecondsAfterFinished", "int"),
    9: _p("completionMode", "string"), 10: _p("suspend", "bool"), 14: _p("podReplacementPolicy", "string"),
    15: _p("managedBy", "string"),
}
JOB = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", JOB_SPEC),
       3: Field("status", "message", {})}
JOB_TEMPLATE_SPEC = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", JOB_SPEC)}
CRONJOB_SPEC = {
    1: Field("schedule", "string"), 8: _p("timeZone", "string"), 2: _p("startingDeadlineSeconds", "int"),
    3: Field("concurrencyPolicy", "string"), 4: _p("suspend", "bool"),
    5: Field("jobTemplate", "message", JOB_TEMPLATE_SPEC), 6: _p("successfulJobsHistoryLimit", "int"),
    7: _p("failedJobsHistoryLimit", "int"),
}
CRONJOB = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", CRONJOB_SPEC),
           3: Field("status", "message", {})}
BATCH_SCHEMAS = {("batch/v1", "Job"): JOB, ("batch/v1", "CronJob"): CRONJOB}
