import datetime
from fractions import Fraction

from apiserver.kinds.quotas import ResourceQuotaStrategy, quota_row
from apiserver.quota import check, missing_compute, object_usage, pod_compute_usage, total_usage

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def pod(*containers, phase="Pending", **meta):
    return {"metadata": {"name": "p", **meta}, "spec": {"containers": list(containers)}, "status": {"phase": phase}}


def container(name="c", requests=None, limits=None):
    return {"name": name, "resources": {"requests": requests or {}, "limits": limits or {}}}


def test_pod_usage_and_counting():
    p = pod(container(requests={"cpu": "250m", "memory": "64Mi"}, limits={"cpu": "500m"}),
            container("d", limits={"cpu": "1", "memory": "1Gi"}))
    usage = pod_compute_usage(p)
    assert usage["requests.cpu"] == Fraction(5, 4) and usage["limits.cpu"] == Fraction(3, 2)
    assert usage["requests.memory"] == 64 * 2**20 + 2**30 and usage["memory"] == usage["requests.memory"]
    assert object_usage("", "pods", p, NOW)["pods"] == 1 and object_usage("", "pods", p, NOW)["count/pods"] == 1
    assert object_usage("", "pods", pod(phase="Succeeded"), NOW) == {}
    past = pod(deletionTimestamp="2025-12-31T23:59:00Z", deletionGracePeriodSeconds=30)
    assert object_usage("", "pods", past, NOW) == {}
    assert object_usage("", "configmaps", {}, NOW) == {"count/configmaps": 1, "configmaps": 1}
    assert object_usage("apps", "deployments", {}, NOW) == {"count/deployments.apps": 1}
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}}
    assert object_usage("", "services", lb, NOW)["services.nodeports"] == 2
    total = total_usage([{"pods": Fraction(1)}, {"pods": Fraction(1), "x": Fraction(3)}], ["pods", "secrets"])
    assert total == {"pods": 2, "secrets": 0}


def test_exceeded_message_lists_only_exceeded_resources():
    hard = {"pods": Fraction(2), "requests.cpu": Fraction(1)}
    assert check("q", hard, {"pods": Fraction(1)}, {"pods": Fraction(1)}) is None
    assert check("q", hard, {"pods": Fraction(2), "requests.cpu": Fraction(0)},
                 {"pods": Fraction(1), "requests.cpu": Fraction(1, 2)}) == \
        "exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2"
    assert check("q", {"requests.memory": Fraction(2**30)}, {"requests.memory": Fraction(2**29)},
                 {"requests.memory": Fraction(2**30)}) == ("exceeded quota: q, requested: requests.memory=1Gi, "
                                                           "used: requests.memory=512Mi, limited: requests.memory=1Gi")


def test_missing_compute_resources():
    hard = {"requests.cpu": Fraction(1), "limits.memory": Fraction(2**30), "pods": Fraction(5)}
    assert missing_compute(pod(container()), hard) == "must specify limits.memory for: c; requests.cpu for: c"
    ok = container(requests={"cpu": "1"}, limits={"memory": "1Gi"})
    assert missing_compute(pod(ok), hard) is None
    assert missing_compute(pod(container(limits={"cpu": "1", "memory": "1Gi"})), hard) is None  # limit → request
    assert missing_compute(pod(container()), {"pods": Fraction(1)}) is None


def test_strategy_validates_and_prints_like_upstream():
    strategy = ResourceQuotaStrategy()
    quota = {"metadata": {"name": "q", "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z"},
             "spec": {"hard": {"pods": "2", "limits.memory": "1Gi", "requests.cpu": "1"}}}
    assert strategy.validate(quota) == []
    bad = {**quota, "spec": {"hard": {"pods": "1.5", "cpu": "-1"}, "scopes": ["Sometimes"]}}
    problems = {e.field: e.message() for e in strategy.validate(bad)}
    assert "must be an integer" in problems["spec.hard[pods]"]
    assert "must be greater than or equal to 0" in problems["spec.hard[cpu]"]
    assert "spec.scopes[0]" in problems
    quota["status"] = {"hard": quota["spec"]["hard"], "used": {"pods": "1", "requests.cpu": "500m"}}
    row = quota_row(quota, NOW + datetime.timedelta(minutes=5))
    assert row.cells == ["q", "5m", "pods: 1/2, requests.cpu: 500m/1", "limits.memory: 0/1Gi"]
