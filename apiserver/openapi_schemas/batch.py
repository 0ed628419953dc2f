"""batch/v1 Job and CronJob (and core/v1 ObjectReference, which a CronJob's status lists)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_JOB_SPEC_FIELDS = {
    "parallelism": ("integer", "Pods that may run at once. Default 1; 0 pauses the Job."),
    "completions": ("integer", "Successful pods needed for the Job to complete. Unset: any success completes it "
                               "(work queue). Default 1 when parallelism is unset too."),
    "completionMode": ("string", "NonIndexed (default): every success counts the same. Indexed: pods get indexes "
                                 "0..completions-1 (annotation, label, hostname and JOB_COMPLETION_INDEX); each index "
                                 "must succeed once."),
    "activeDeadlineSeconds": ("integer", "Seconds the Job may be active, counted from its start (or resume); past "
                                         "it the pods are stopped and the Job fails with DeadlineExceeded."),
    "backoffLimit": ("integer", "Failed pods (or container restarts with restartPolicy OnFailure) before the Job "
                                "fails with BackoffLimitExceeded. Default 6. Replacements start after an exponential "
                                "back-off: 10 s, 20 s, 40 s ... at most 10 min."),
    "backoffLimitPerIndex": ("integer", "Failures allowed per index of an Indexed Job."),
    "maxFailedIndexes": ("integer", "Failed indexes allowed before an Indexed Job with backoffLimitPerIndex fails."),
    "podFailurePolicy": ("batch.PodFailurePolicy", "Rules on exit codes or pod conditions that fail the Job at once, "
                                                   "ignore a failure or count it. Needs restartPolicy Never."),
    "successPolicy": ("batch.SuccessPolicy", "When an Indexed Job counts as succeeded before all indexes succeed."),
    "podReplacementPolicy": ("string", "TerminatingOrFailed (default): a replacement starts once a pod is "
                                       "terminating; Failed: only once it has fully failed."),
    "selector": ("meta.LabelSelector", "Pods the Job counts. Generated from the Job's uid unless manualSelector."),
    "manualSelector": ("boolean", "Whether the selector is set by hand rather than generated. Default false."),
    "template": ("core.PodTemplateSpec", "The pods to run; restartPolicy must be OnFailure or Never."),
    "ttlSecondsAfterFinished": ("integer", "Seconds after the Job finishes (Complete or Failed) before it is "
                                           "deleted with its pods. Unset: kept."),
    "suspend": ("boolean", "Whether the controller creates pods. Suspending a running Job deletes its active pods; "
                           "resuming restarts the activeDeadlineSeconds clock. Default false."),
    "managedBy": ("string", "The controller that runs the Job; the built-in one is kubernetes.io/job-controller. "
                            "Immutable."),
}
_CONDITION = {
    "type": ("string", "Complete, Failed, SuccessCriteriaMet, FailureTarget or Suspended."),
    "status": ("string", "True, False or Unknown."),
    "lastProbeTime": ("Time", "Last time the condition was checked."),
    "lastTransitionTime": ("Time", "Last time the condition changed status."),
    "reason": ("string", "Machine-readable reason, e.g. CompletionsReached, BackoffLimitExceeded."),
    "message": ("string", "Human-readable details."),
}

BATCH: dict[str, Definition] = {
    "batch.Job": Definition(
        "A Job runs pods until a number of them succeed, replacing failed ones up to a limit.",
        kind_fields(("batch.JobSpec", "What to run and how many times it must succeed."),
                    ("batch.JobStatus", "Most recently observed state of the Job. Read-only."))),
    "batch.JobSpec": Definition("Desired behaviour of a Job.", _JOB_SPEC_FIELDS, required=("template",)),
    "batch.JobStatus": Definition("Observed state of a Job.", {
        "conditions": ("[]batch.JobCondition", "Complete or Failed once finished (after SuccessCriteriaMet or "
                                               "FailureTarget); Suspended while suspended."),
        "startTime": ("Time", "When the controller started the Job (or resumed it)."),
        "completionTime": ("Time", "When the Job completed; set only on success."),
        "active": ("integer", "Pending and running pods that are not terminating."),
        "ready": ("integer", "Active pods with a Ready condition."),
        "terminating": ("integer", "Pods being deleted that have not reached a terminal phase."),
        "succeeded": ("integer", "Pods that reached phase Succeeded."),
        "failed": ("integer", "Pods that reached phase Failed (or were deleted before succeeding)."),
        "completedIndexes": ("string", "Succeeded indexes of an Indexed Job, as intervals: \"1,3-5,7\"."),
        "failedIndexes": ("string", "Failed indexes, when backoffLimitPerIndex is set."),
        "uncountedTerminatedPods": ("batch.UncountedTerminatedPods", "Finished pods whose tracking finalizer is "
                                                                     "being removed before they are counted."),
    }),
    "batch.JobCondition": Definition("A condition of a Job.", _CONDITION, required=("type", "status")),
    "batch.UncountedTerminatedPods": Definition("Uids of finished pods not yet in the counters.", {
        "succeeded": ("[]string", "Uids of succeeded pods."),
        "failed": ("[]string", "Uids of failed pods."),
    }),
    "batch.PodFailurePolicy": Definition("How pod failures are handled.", {
        "rules": ("[]batch.PodFailurePolicyRule", "Rules checked in order; the first matching one applies."),
    }, required=("rules",)),
    "batch.PodFailurePolicyRule": Definition("One rule: an action and exactly one requirement.", {
        "action": ("string", "FailJob, FailIndex, Ignore or Count."),
        "onExitCodes": ("batch.PodFailurePolicyOnExitCodesRequirement", "Matches containers' exit codes."),
        "onPodConditions": ("[]batch.PodFailurePolicyOnPodConditionsPattern", "Matches pod conditions."),
    }, required=("action",)),
    "batch.PodFailurePolicyOnExitCodesRequirement": Definition("Exit codes a failed container must (not) have.", {
        "containerName": ("string", "Only this container (any when unset)."),
        "operator": ("string", "In or NotIn."),
        "values": ("[]integer", "Exit codes, ordered, without duplicates; 0 not allowed with In."),
    }, required=("operator", "values")),
    "batch.PodFailurePolicyOnPodConditionsPattern": Definition("A pod condition to match.", {
        "type": ("string", "Condition type, e.g. DisruptionTarget."),
        "status": ("string", "True (default), False or Unknown."),
    }, required=("type",)),
    "batch.SuccessPolicy": Definition("When an Indexed Job succeeds early.", {
        "rules": ("[]batch.SuccessPolicyRule", "The Job succeeds when any rule is met."),
    }, required=("rules",)),
    "batch.SuccessPolicyRule": Definition("Succeeded indexes and/or a count of them.", {
        "succeededIndexes": ("string", "Indexes that must succeed, as intervals: \"0,2-4\"."),
        "succeededCount": ("integer", "How many of them (or of all indexes) must succeed."),
    }),
    "batch.CronJob": Definition(
        "A CronJob creates Jobs on a repeating schedule.",
        kind_fields(("batch.CronJobSpec", "The schedule and the Jobs to create."),
                    ("batch.CronJobStatus", "Most recently observed state of the CronJob. Read-only."))),
    "batch.CronJobSpec": Definition("Desired behaviour of a CronJob.", {
        "schedule": ("string", "The schedule in cron format (minute hour day-of-month month day-of-week), or "
                               "@yearly, @monthly, @weekly, @daily, @hourly, @every <duration>."),
        "timeZone": ("string", "IANA time zone of the schedule, e.g. Europe/Paris. Default: the controller's (UTC)."),
        "startingDeadlineSeconds": ("integer", "Seconds after a missed schedule time within which the Job may still "
                                               "start."),
        "concurrencyPolicy": ("string", "Allow (default): Jobs may overlap; Forbid: skip a run while the previous "
                                        "one is active; Replace: delete the active Job and start the new one."),
        "suspend": ("boolean", "Whether later schedule times are skipped. Default false."),
        "jobTemplate": ("batch.JobTemplateSpec", "The Job to create at each schedule time."),
        "successfulJobsHistoryLimit": ("integer", "Completed Jobs to keep. Default 3."),
        "failedJobsHistoryLimit": ("integer", "Failed Jobs to keep. Default 1."),
    }, required=("schedule", "jobTemplate")),
    "batch.JobTemplateSpec": Definition("The Job a CronJob creates.", {
        "metadata": ("meta.ObjectMeta", "Labels and annotations copied onto the created Jobs."),
        "spec": ("batch.JobSpec", "Spec of the created Jobs (no selector: it is generated)."),
    }),
    "batch.CronJobStatus": Definition("Observed state of a CronJob.", {
        "active": ("[]core.ObjectReference", "Jobs of this CronJob still running."),
        "lastScheduleTime": ("Time", "The last schedule time a Job was created for."),
        "lastSuccessfulTime": ("Time", "When the last Job completed successfully."),
    }),
    "core.ObjectReference": Definition("A reference to an object.", {
        "kind": ("string", "Kind of the object."), "namespace": ("string", "Namespace of the object."),
        "name": ("string", "Name of the object."), "uid": ("string", "UID of the object."),
        "apiVersion": ("string", "API version of the object."),
        "resourceVersion": ("string", "The object's resourceVersion the reference was made from."),
        "fieldPath": ("string", "A part of the object, e.g. spec.containers{name}."),
    }),
}
