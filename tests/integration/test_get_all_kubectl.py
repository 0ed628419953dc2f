"""The workload kinds together through real kubectl v1.35 (no agent; one Node object): `kubectl get all` lists
Pods, Services, DaemonSets, Deployments, ReplicaSets, StatefulSets, HPAs, CronJobs and Jobs in kubectl's order;
`kubectl describe` shows each controller's events; ResourceQuota counts every kind as `count/<plural>.<group>`."""
import json
import shutil

import pytest

from tests.integration.test_apiserver_kubectl import NODE
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

TEMPLATE = {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}
STATEFULSET = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}}, **TEMPLATE}}}
DAEMONSET = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "exporter"},
             "spec": {"selector": {"matchLabels": {"app": "exporter"}},
                      "template": {"metadata": {"labels": {"app": "exporter"}}, **TEMPLATE}}}
COUNTED = {"count/deployments.apps": 1, "count/replicasets.apps": 1, "count/statefulsets.apps": 1,
           "count/daemonsets.apps": 1, "count/controllerrevisions.apps": 2, "count/jobs.batch": 1,
           "count/cronjobs.batch": 1, "count/horizontalpodautoscalers.autoscaling": 1, "count/services": 1,
           "count/pods": 5, "count/poddisruptionbudgets.policy": 1}


def test_get_all_describe_events_and_quota_counts(server):
    server.kubectl("create", "namespace", "shop")
    hard = {name: "10" for name in COUNTED}
    server.kubectl("apply", "-n", "shop", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "counts"}, "spec": {"hard": hard}}))
    server.kubectl("create", "-f", "-", input=json.dumps(NODE))
    for args in (("create", "deployment", "web", "--image=busybox", "--replicas=2"),
                 ("create", "job", "once", "--image=busybox"),
                 ("create", "cronjob", "tick", "--image=busybox", "--schedule=*/5 * * * *"),
                 ("create", "service", "clusterip", "web", "--tcp=80:80"),
                 ("autoscale", "deployment", "web", "--min=1", "--max=3", "--cpu=50%"),
                 ("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=1")):
        server.kubectl(*args, "-n", "shop")
    server.kubectl("apply", "-n", "shop", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                       "items": [STATEFULSET, DAEMONSET]}))
    wait_for(lambda: len(server.kubectl("get", "pods", "-n", "shop", "-o", "name").stdout.split()) == 5,
             what="five pods")

    listed = server.kubectl("get", "all", "-n", "shop").stdout
    kinds = [line.split()[0].split("/")[0] for line in listed.splitlines() if line and not line.startswith("NAME")]
    assert list(dict.fromkeys(kinds)) == ["pod", "service", "daemonset.apps", "deployment.apps", "replicaset.apps",
                                          "statefulset.apps", "horizontalpodautoscaler.autoscaling", "cronjob.batch",
                                          "job.batch"]
    assert "poddisruptionbudget" not in listed  # not in category all

    for target, reason, source in (("deployment/web", "ScalingReplicaSet", "deployment-controller"),
                                   ("replicaset", "SuccessfulCreate", "replicaset-controller"),
                                   ("statefulset/db", "SuccessfulCreate", "statefulset-controller"),
                                   ("daemonset/exporter", "SuccessfulCreate", "daemonset-controller"),
                                   ("job/once", "SuccessfulCreate", "job-controller"),
                                   ("pod/db-0", "Scheduled", "default-scheduler")):
        described = wait_for(lambda target=target, reason=reason: (lambda out: reason in out and out)(
            server.kubectl("describe", "-n", "shop", target).stdout), what=f"{target} {reason} event")
        events = described[described.index("Events:"):]
        assert reason in events and source in events, events

    def used():
        quota = json.loads(server.kubectl("get", "quota", "counts", "-n", "shop", "-o", "json").stdout)
        counted = {name: int(value) for name, value in quota.get("status", {}).get("used", {}).items()}
        return counted if counted == COUNTED else None
    assert wait_for(used, what="quota counts") == COUNTED
