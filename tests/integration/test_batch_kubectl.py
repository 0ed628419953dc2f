"""Jobs and CronJobs through the real kubectl against a server subprocess (no node): discovery, `get all`,
protobuf creates, validation messages, explain, quota object counts, field selectors, and the Job status a
fake kubelet's pod results lead to."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

IMAGE = "127.0.0.1:5000/library/busybox:latest"


def test_discovery_lists_jobs_and_cronjobs(module_server):
    resources = module_server.kubectl("api-resources", "--api-group=batch", "-o", "wide").stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in resources[1:]}
    assert rows["cronjobs"][1:5] == ["cj", "batch/v1", "true", "CronJob"]
    assert "all" in rows["cronjobs"][-1] and "all" in rows["jobs"][-1]
    assert rows["jobs"][1:4] == ["batch/v1", "true", "Job"]
    assert "create,delete,deletecollection,get,list,patch,update,watch" in " ".join(rows["jobs"]).replace("[", "") \
        .replace("]", "").replace(" ", ",")


def test_create_get_all_and_columns(module_server):
    kubectl = module_server.kubectl
    kubectl("create", "namespace", "b1")
    kubectl("create", "job", "hello", f"--image={IMAGE}", "-n", "b1", "--", "echo", "hi")  # protobuf body
    kubectl("create", "cronjob", "every", f"--image={IMAGE}", "--schedule=@hourly", "-n", "b1", "--", "date")
    job = json.loads(kubectl("get", "job", "hello", "-n", "b1", "-o", "json").stdout)
    uid = job["metadata"]["uid"]
    assert job["spec"]["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
    assert job["spec"]["template"]["metadata"]["labels"] == {
        "batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": "hello", "controller-uid": uid,
        "job-name": "hello"}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    everything = kubectl("get", "all", "-n", "b1").stdout
    assert "job.batch/hello" in everything and "cronjob.batch/every" in everything
    table = kubectl("get", "jobs", "-n", "b1").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert table[1].split()[:3] == ["hello", "Running", "0/1"]
    wide = kubectl("get", "cj", "-n", "b1", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE",
                               "CONTAINERS", "IMAGES", "SELECTOR"]
    assert wide[1].split()[:6] == ["every", "@hourly", "<none>", "False", "0", "<none>"]
    # the Job's pod carries the tracking finalizer and the Job's labels
    pod = wait_for(lambda: json.loads(kubectl("get", "pods", "-n", "b1", "-l", "job-name=hello", "-o",
                                              "json").stdout)["items"], 20, "the job's pod")[0]
    assert pod["metadata"]["finalizers"] == ["batch.kubernetes.io/job-tracking"]
    assert pod["metadata"]["ownerReferences"][0] == {"apiVersion": "batch/v1", "kind": "Job", "name": "hello",
                                                     "uid": uid, "controller": True, "blockOwnerDeletion": True}
    # field selector status.successful
    assert "hello" in kubectl("get", "jobs", "-n", "b1", "--field-selector", "status.successful=0").stdout


def test_validation_messages_as_upstream(module_server):
    bad = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "bad"},
           "spec": {"backoffLimit": -1, "template": {"spec": {"containers": [{"name": "c", "image": IMAGE}]}}}}
    result = module_server.kubectl("apply", "-f", "-", input=json.dumps(bad), check=False)
    assert result.returncode != 0
    assert 'The Job "bad" is invalid: \n* spec.backoffLimit: Invalid value: -1: must be greater than or equal to 0\n' \
           '* spec.template.spec.restartPolicy: Required value: valid values: "OnFailure", "Never"' in result.stderr
    cron = module_server.kubectl("create", "cronjob", "c1", f"--image={IMAGE}", "--schedule=* * *", check=False)
    assert 'spec.schedule: Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]' in cron.stderr
    unknown = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "unk"},
               "spec": {"completionz": 2, "template": {"spec": {"restartPolicy": "Never",
                                                                "containers": [{"name": "c", "image": IMAGE}]}}}}
    strict = module_server.kubectl("apply", "-f", "-", input=json.dumps(unknown), check=False)
    assert 'unknown field "spec.completionz"' in strict.stderr
    immutable = module_server.kubectl("create", "job", "imm", f"--image={IMAGE}")
    assert immutable.returncode == 0
    patch = module_server.kubectl("patch", "job", "imm", "--type=merge", "-p", '{"spec":{"completions":3}}',
                                  check=False)
    assert "spec.completions: Invalid value: 3: field is immutable" in patch.stderr


def test_explain(module_server):
    text = module_server.kubectl("explain", "cronjob.spec.jobTemplate.spec.completionMode").stdout
    assert "completionMode" in text and "Indexed" in text
    assert "ttlSecondsAfterFinished" in module_server.kubectl("explain", "job.spec").stdout


def test_quota_counts_jobs_and_cronjobs(module_server):
    kubectl = module_server.kubectl
    kubectl("create", "namespace", "bq")
    kubectl("create", "quota", "q", "-n", "bq", "--hard=count/jobs.batch=1,count/cronjobs.batch=1")
    wait_for(lambda: json.loads(kubectl("get", "quota", "q", "-n", "bq", "-o", "json").stdout)
             .get("status", {}).get("hard"), 20, "the quota's status")
    kubectl("create", "job", "one", f"--image={IMAGE}", "-n", "bq")
    second = kubectl("create", "job", "two", f"--image={IMAGE}", "-n", "bq", check=False)
    assert second.returncode != 0
    assert 'jobs.batch "two" is forbidden: exceeded quota: q, requested: count/jobs.batch=1, used: ' \
           'count/jobs.batch=1, limited: count/jobs.batch=1' in second.stderr
    kubectl("create", "cronjob", "c", f"--image={IMAGE}", "--schedule=@daily", "-n", "bq")
    another = kubectl("create", "cronjob", "d", f"--image={IMAGE}", "--schedule=@daily", "-n", "bq", check=False)
    assert "exceeded quota: q, requested: count/cronjobs.batch=1" in another.stderr
    used = json.loads(kubectl("get", "quota", "q", "-n", "bq", "-o", "json").stdout)["status"]["used"]
    assert used == {"count/jobs.batch": "1", "count/cronjobs.batch": "1"}


def test_job_status_follows_its_pods(module_server):
    """A fake kubelet: the pods' results (written through pods/status) drive the Job to Complete."""
    kubectl = module_server.kubectl
    kubectl("create", "namespace", "bs")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "work", "namespace": "bs"},
           "spec": {"completions": 3, "parallelism": 2, "template": {"spec": {
               "restartPolicy": "Never", "containers": [{"name": "c", "image": IMAGE}]}}}}
    kubectl("apply", "-f", "-", input=json.dumps(job))
    done: set[str] = set()

    def finish_pods():
        items = json.loads(kubectl("get", "pods", "-n", "bs", "-o", "json").stdout)["items"]
        for pod in items:
            name = pod["metadata"]["name"]
            if name in done:
                continue
            status = {"status": {"phase": "Succeeded", "containerStatuses": [{
                "name": "c", "ready": False, "restartCount": 0, "image": IMAGE, "imageID": "",
                "state": {"terminated": {"exitCode": 0, "reason": "Completed",
                                         "startedAt": "2026-01-01T00:00:00Z", "finishedAt": "2026-01-01T00:00:01Z"}}}]}}
            module_server.request("PATCH", f"/api/v1/namespaces/bs/pods/{name}/status", status,
                                  content_type="application/merge-patch+json")
            done.add(name)
        obj = json.loads(kubectl("get", "job", "work", "-n", "bs", "-o", "json").stdout)
        return obj if any(c["type"] == "Complete" for c in obj["status"].get("conditions") or []) else None
    complete = wait_for(finish_pods, 60, "the job to complete", interval=0.3)
    assert complete["status"]["succeeded"] == 3 and len(done) == 3
    kubectl("wait", "--for=condition=complete", "job/work", "-n", "bs", "--timeout=5s")
    describe = kubectl("describe", "job", "work", "-n", "bs").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 3 Succeeded / 0 Failed" in describe
    assert "Completed" in describe and "Job completed" in describe
