"""batch/v1 Job and CronJob kinds: defaulting, selector generation, validation messages (upstream's), update
rules, tables and protobuf bodies."""
from __future__ import annotations

import copy
import datetime

from apiserver.errors import invalid_object
from apiserver.kinds.batch import CronJobStrategy, JobStrategy, go_selector
from apiserver.kinds.batch_tables import cronjob_row, job_row
from apiserver.protobuf import decode_object
from tests.unit.test_apiserver_protobuf import envelope, field

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
UID = "0d9b5a8e-1111-2222-3333-444455556666"


def job(**spec):
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "pi", "namespace": "default", "uid": UID, "creationTimestamp": "2026-01-01T11:58:00Z"},
            "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox", "command": ["true"]}],
                                           "restartPolicy": "Never"}}, **spec}}


def created(obj):
    """What the registry does on create: defaults, then prepare_for_create (selector generation)."""
    strategy = JobStrategy()
    strategy.default(obj)
    strategy.prepare_for_create(obj)
    return obj


def message(strategy, obj, problems=None):
    problems = strategy.validate(obj) if problems is None else problems
    return invalid_object(strategy.info.group, strategy.info.kind, obj["metadata"]["name"], problems).message \
        if problems else ""


def test_job_defaults_and_generated_selector_as_upstream():
    obj = created(job())
    spec = obj["spec"]
    assert {k: spec[k] for k in ("parallelism", "completions", "backoffLimit", "completionMode", "suspend",
                                 "podReplacementPolicy", "manualSelector")} == {
        "parallelism": 1, "completions": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": False,
        "podReplacementPolicy": "TerminatingOrFailed", "manualSelector": False}
    labels = {"batch.kubernetes.io/controller-uid": UID, "batch.kubernetes.io/job-name": "pi",
              "controller-uid": UID, "job-name": "pi"}
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": UID}}
    assert spec["template"]["metadata"]["labels"] == labels
    assert obj["metadata"]["labels"] == labels  # a Job without labels shows its template's
    assert obj["status"] == {}
    pod = spec["template"]["spec"]
    assert pod["dnsPolicy"] == "ClusterFirst" and pod["terminationGracePeriodSeconds"] == 30
    assert "tolerations" not in pod
    assert JobStrategy().validate(obj) == []


def test_parallelism_alone_leaves_completions_unset_and_failure_policy_defaults():
    spec = created(job(parallelism=3))["spec"]
    assert spec["parallelism"] == 3 and "completions" not in spec
    policy = {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    spec = created(job(podFailurePolicy=policy))["spec"]
    assert spec["podFailurePolicy"]["rules"][0]["onPodConditions"] == [{"type": "DisruptionTarget", "status": "True"}]
    assert spec["podReplacementPolicy"] == "Failed"
    spec = created(job(completionMode="Indexed", completions=3, backoffLimitPerIndex=1))["spec"]
    assert spec["backoffLimit"] == 2147483647


def test_restart_policy_must_be_on_failure_or_never():
    obj = job()
    del obj["spec"]["template"]["spec"]["restartPolicy"]
    assert message(JobStrategy(), created(obj)) == (
        'Job.batch "pi" is invalid: spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", '
        '"Never"')
    obj = job()
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Sometimes"
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Sometimes": supported values: "OnFailure", ' \
           '"Never"' in message(JobStrategy(), created(obj))


def test_validation_messages():
    obj = created(job(parallelism=-1, backoffLimit=-2, completions=-3, activeDeadlineSeconds=-4,
                      ttlSecondsAfterFinished=-5))
    text = message(JobStrategy(), obj)
    for key, value in (("parallelism", -1), ("backoffLimit", -2), ("completions", -3),
                       ("activeDeadlineSeconds", -4), ("ttlSecondsAfterFinished", -5)):
        assert f"spec.{key}: Invalid value: {value}: must be greater than or equal to 0" in text
    obj = created(job(completionMode="Indexed"))
    del obj["spec"]["completions"]
    obj["spec"]["parallelism"] = 2
    assert "spec.completions: Required value: when completion mode is Indexed" in message(JobStrategy(), obj)
    obj = created(job(completionMode="Sometimes"))
    assert 'spec.completionMode: Unsupported value: "Sometimes": supported values: "NonIndexed", "Indexed"' in \
        message(JobStrategy(), obj)
    long_name = job(completionMode="Indexed", completions=100)
    long_name["metadata"]["name"] = "x" * 61
    assert f"metadata.name: Invalid value: \"{'x' * 61}\": will not able to create pod with invalid DNS label: " \
           f"{'x' * 61}-99" in message(JobStrategy(), created(long_name))
    obj = created(job(backoffLimitPerIndex=1))
    assert "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode" in message(JobStrategy(), obj)


def test_generated_selector_must_not_be_overridden():
    obj = job(selector={"matchLabels": {"app": "x"}})
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "x", "job-name": "other"}}
    text = message(JobStrategy(), created(obj))
    assert "spec.template.metadata.labels[job-name]: Invalid value: \"other\": must be 'pi'" in text
    assert "spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: x,batch.kubernetes.io/" \
           f"controller-uid: {UID},}},MatchExpressions:[]LabelSelectorRequirement{{}},}}: `selector` not " \
           "auto-generated" in text


def test_manual_selector_must_match_the_template():
    obj = job(manualSelector=True, selector={"matchLabels": {"app": "x"}})
    obj["spec"]["template"]["metadata"] = {"labels": {"app": "y"}}
    assert message(JobStrategy(), created(obj)) == (
        'Job.batch "pi" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{"app":"y"}: '
        '`selector` does not match template `labels`')
    obj["spec"]["template"]["metadata"]["labels"] = {"app": "x"}
    assert JobStrategy().validate(created(obj)) == []
    no_selector = created(job(manualSelector=True))
    assert "spec.selector: Required value" in message(JobStrategy(), no_selector)


def test_pod_failure_policy_validation():
    policy = {"rules": [
        {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [0, 5, 3, 3]}},
        {"action": "Explode", "onPodConditions": [{"type": "DisruptionTarget", "status": "Maybe"}]},
        {"action": "Ignore"},
        {"action": "Count", "onExitCodes": {"containerName": "nope", "operator": "NotIn", "values": [1]}},
    ]}
    text = message(JobStrategy(), created(job(podFailurePolicy=policy)))
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In " \
           "operator" in text
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values[3]: Duplicate value: 3" in text
    assert "spec.podFailurePolicy.rules[0].onExitCodes.values: Invalid value: []int32{0, 5, 3, 3}: must be ordered" \
        in text
    assert 'spec.podFailurePolicy.rules[1].action: Unsupported value: "Explode": supported values: "Count", ' \
           '"FailIndex", "FailJob", "Ignore"' in text
    assert 'spec.podFailurePolicy.rules[1].onPodConditions[0].status: Unsupported value: "Maybe": supported ' \
           'values: "False", "True", "Unknown"' in text
    assert "spec.podFailurePolicy.rules[2]: Invalid value: <omitted>: specifying one of OnExitCodes and " \
           "OnPodConditions is required" in text
    assert 'spec.podFailurePolicy.rules[3].onExitCodes.containerName: Invalid value: "nope": must be one of the ' \
           'container or initContainer names in the pod template' in text
    on_failure = job(podFailurePolicy={"rules": [{"action": "Ignore", "onExitCodes": {"operator": "In",
                                                                                       "values": [1]}}]})
    on_failure["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    assert 'spec.template.spec.restartPolicy: Invalid value: "OnFailure": only "Never" is supported when ' \
           'podFailurePolicy is specified' in message(JobStrategy(), created(on_failure))


def test_update_rules():
    old = created(job(suspend=False))
    old["metadata"]["resourceVersion"] = "5"
    new = copy.deepcopy(old)
    new["spec"]["completions"] = 3
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "other"
    text = message(JobStrategy(), new, JobStrategy().validate_update(new, old))
    assert "spec.completions: Invalid value: 3: field is immutable" in text
    assert "spec.template: Invalid value: core.PodTemplateSpec{...}: field is immutable" in text
    mode = copy.deepcopy(old)
    mode["spec"]["completionMode"] = "Indexed"
    assert 'spec.completionMode: Invalid value: "Indexed": field is immutable' in \
        message(JobStrategy(), mode, JobStrategy().validate_update(mode, old))
    # mutable: parallelism, suspend, activeDeadlineSeconds, ttl
    fine = copy.deepcopy(old)
    fine["spec"].update(parallelism=4, suspend=True, activeDeadlineSeconds=30, ttlSecondsAfterFinished=10)
    assert JobStrategy().validate_update(fine, old) == []
    # a suspended Job that never started may change its scheduling directives
    suspended = created(job(suspend=True))
    moved = copy.deepcopy(suspended)
    moved["spec"]["template"]["spec"]["nodeSelector"] = {"disk": "ssd"}
    assert JobStrategy().validate_update(moved, suspended) == []
    started = copy.deepcopy(suspended)
    started["status"] = {"startTime": "2026-01-01T00:00:00Z"}
    assert JobStrategy().validate_update(moved, started) != []
    # Indexed Jobs scale completions together with parallelism
    indexed = created(job(completionMode="Indexed", completions=2, parallelism=2))
    scaled = copy.deepcopy(indexed)
    scaled["spec"].update(completions=4, parallelism=4)
    assert JobStrategy().validate_update(scaled, indexed) == []
    scaled["spec"]["parallelism"] = 3
    assert "spec.completions: Invalid value: 4: can only be modified in tandem with spec.parallelism" in \
        message(JobStrategy(), scaled, JobStrategy().validate_update(scaled, indexed))


def test_status_update_keeps_terminal_conditions():
    old = created(job())
    old["status"] = {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}
    new = copy.deepcopy(old)
    new["status"] = {"succeeded": -1}
    text = message(JobStrategy(), new, JobStrategy().validate_status_update(new, old))
    assert "status.succeeded: Invalid value: -1: must be greater than or equal to 0" in text
    assert "status.conditions: Invalid value: <omitted>: cannot disable the terminal Complete=True condition" in text


def test_job_table():
    obj = created(job())
    row = job_row(obj, NOW).cells
    assert row[:5] == ["pi", "Running", "0/1", "", "2m"]
    obj["status"] = {"startTime": "2026-01-01T11:58:00Z", "completionTime": "2026-01-01T11:58:05Z", "succeeded": 1,
                     "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                    {"type": "Complete", "status": "True"}]}
    assert job_row(obj, NOW).cells[:5] == ["pi", "Complete", "1/1", "5s", "2m"]
    obj["status"] = {"startTime": "2026-01-01T11:59:00Z", "conditions": [{"type": "FailureTarget", "status": "True"}]}
    assert job_row(obj, NOW).cells[1:4] == ["FailureTarget", "0/1", "60s"]
    obj["status"]["conditions"].append({"type": "Failed", "status": "True"})
    assert job_row(obj, NOW).cells[1] == "Failed"
    obj["status"] = {"conditions": [{"type": "Suspended", "status": "True"}]}
    assert job_row(obj, NOW).cells[1] == "Suspended"
    obj["metadata"]["deletionTimestamp"] = "2026-01-01T12:00:00Z"
    assert job_row(obj, NOW).cells[1] == "Terminating"
    queue = created(job(parallelism=3))
    assert job_row(queue, NOW).cells[2] == "0/1 of 3"
    assert job_row(queue, NOW).cells[5:] == ["c", "busybox", f"batch.kubernetes.io/controller-uid={UID}"]


def cronjob(**spec):
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "default", "uid": "cj",
                         "creationTimestamp": "2026-01-01T11:00:00Z"},
            "spec": {"schedule": "*/1 * * * *",
                     "jobTemplate": {"spec": {"template": {"spec": {
                         "containers": [{"name": "c", "image": "busybox"}], "restartPolicy": "OnFailure"}}}},
                     **spec}}


def test_cronjob_defaults_and_validation():
    obj = cronjob()
    CronJobStrategy().default(obj)
    spec = obj["spec"]
    assert (spec["concurrencyPolicy"], spec["suspend"], spec["successfulJobsHistoryLimit"],
            spec["failedJobsHistoryLimit"]) == ("Allow", False, 3, 1)
    job_spec = spec["jobTemplate"]["spec"]
    assert "completions" not in job_spec and "backoffLimit" not in job_spec  # Job defaults are the Job's
    assert job_spec["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert CronJobStrategy().validate(obj) == []

    bad = cronjob(schedule="61 * * * *", timeZone="Mars/Olympus", concurrencyPolicy="Sometimes",
                  startingDeadlineSeconds=-1, successfulJobsHistoryLimit=-1)
    bad["metadata"]["name"] = "n" * 53
    bad["spec"]["jobTemplate"]["spec"]["selector"] = {"matchLabels": {"a": "b"}}
    bad["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always"
    CronJobStrategy().default(bad)
    text = message(CronJobStrategy(), bad)
    assert 'spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61' in text
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' in text
    assert 'spec.concurrencyPolicy: Unsupported value: "Sometimes": supported values: "Allow", "Forbid", ' \
           '"Replace"' in text
    assert "spec.startingDeadlineSeconds: Invalid value: -1: must be greater than or equal to 0" in text
    assert "spec.successfulJobsHistoryLimit: Invalid value: -1: must be greater than or equal to 0" in text
    assert "spec.jobTemplate.spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{a: b,}," \
           "MatchExpressions:[]LabelSelectorRequirement{},}: `selector` will be auto-generated" in text
    assert 'spec.jobTemplate.spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", ' \
           '"Never"' in text
    assert f'metadata.name: Invalid value: "{"n" * 53}": must be no more than 52 characters' in text
    tz = cronjob(schedule="TZ=UTC 0 * * * *")
    CronJobStrategy().default(tz)
    assert 'spec.schedule: Invalid value: "TZ=UTC 0 * * * *": cannot use TZ or CRON_TZ in schedule, use timeZone ' \
           'field instead' in message(CronJobStrategy(), tz)
    for zone, problem in (("", "timeZone must be nil or non-empty string"),
                          ("Local", "timeZone must be an explicit time zone as defined in "
                                    "https://www.iana.org/time-zones"),
                          ("../etc", "unknown time zone ../etc")):
        obj = cronjob(timeZone=zone)
        CronJobStrategy().default(obj)
        assert f'spec.timeZone: Invalid value: "{zone}": {problem}' in message(CronJobStrategy(), obj)
    ok = cronjob(schedule="@hourly", timeZone="Europe/Paris")
    CronJobStrategy().default(ok)
    assert CronJobStrategy().validate(ok) == []


def test_cronjob_table():
    obj = cronjob(timeZone="Europe/Paris")
    CronJobStrategy().default(obj)
    assert cronjob_row(obj, NOW).cells == ["nightly", "*/1 * * * *", "Europe/Paris", "False", 0, "<none>", "60m",
                                           "c", "busybox", "<none>"]
    obj["status"] = {"active": [{"name": "nightly-1"}], "lastScheduleTime": "2026-01-01T11:59:00Z"}
    assert cronjob_row(obj, NOW).cells[3:6] == ["False", 1, "60s"]


def test_go_selector_rendering():
    assert go_selector({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", "y"]}]}) == (
        "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{"
        "LabelSelectorRequirement{Key:a,Operator:In,Values:[x y],},},}")


def test_protobuf_job_and_cronjob_like_kubectl_create_sends():
    container = field(1, "c") + field(2, "busybox") + field(3, "sh") + field(3, "-c") + field(3, "echo hi") + \
        field(7, field(1, "IDX") + field(3, field(1, field(2, "metadata.labels['x']")))) + \
        field(10, field(1, field(1, field(1, "true"))) + field(4, 5)) + \
        field(15, field(4, 0) + field(6, 1))
    volume = field(1, "cfg") + field(2, field(19, field(1, field(1, "settings")) + field(3, 420)))
    pod_spec = field(1, volume) + field(2, container) + field(3, "Never") + field(4, 0)
    template = field(1, field(11, field(1, "app") + field(2, "x"))) + field(2, pod_spec)
    job_spec = field(7, 0) + field(10, 0) + field(6, template) + field(8, 0)
    decoded = decode_object(envelope("batch/v1", "Job", field(1, field(1, "x")) + field(2, job_spec)))
    assert decoded["spec"]["backoffLimit"] == 0 and decoded["spec"]["suspend"] is False
    assert decoded["spec"]["ttlSecondsAfterFinished"] == 0
    pod = decoded["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 0 and pod["restartPolicy"] == "Never"
    assert pod["volumes"] == [{"name": "cfg", "configMap": {"name": "settings", "defaultMode": 420}}]
    assert pod["containers"][0] == {
        "name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi"],
        "env": [{"name": "IDX", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['x']"}}}],
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5},
        "securityContext": {"runAsUser": 0, "readOnlyRootFilesystem": True}}
    cron_spec = field(1, "*/1 * * * *") + field(3, "Forbid") + field(6, 0) + field(8, "Europe/Paris") + \
        field(5, field(2, job_spec))
    cron = decode_object(envelope("batch/v1", "CronJob", field(1, field(1, "cj")) + field(2, cron_spec)))
    assert cron["spec"]["successfulJobsHistoryLimit"] == 0 and cron["spec"]["timeZone"] == "Europe/Paris"
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"] == {"app": "x"}
