"""LimitRanger and DefaultIngressClass admission through real kubectl v1.35 against a `shipmate server` (no agent):
LimitRange defaults on created pods (and their annotation and QoS class), upstream's 403s for pods and claims,
the default IngressClass given to Ingresses created without a class."""
import json
import shutil

import pytest

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

LIMITS = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "bounds"},
          "spec": {"limits": [
              {"type": "Container", "min": {"cpu": "100m", "memory": "64Mi"}, "max": {"cpu": "1", "memory": "1Gi"},
               "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "200m", "memory": "128Mi"},
               "maxLimitRequestRatio": {"cpu": "4"}},
              {"type": "Pod", "max": {"cpu": "1500m"}},
              {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "5Gi"}}]}}


def apply(server, obj, namespace, check=True):
    return server.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(obj), check=check)


def pod(name, *containers):
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": list(containers) or [{"name": "app", "image": "busybox"}]}}


def container(name, requests=None, limits=None):
    return {"name": name, "image": "busybox", "resources": {k: v for k, v in (("requests", requests),
                                                                               ("limits", limits)) if v}}


def test_limit_range_defaults_and_refusals(module_server):
    server = module_server
    server.kubectl("create", "namespace", "bounded")
    apply(server, LIMITS, "bounded")
    described = server.kubectl("describe", "limitrange", "bounds", "-n", "bounded").stdout.splitlines()
    # kubectl describe walks each limit's resources through a Go map: their order changes from run to run.
    assert sorted(line.split() for line in described[4:]) == sorted([
        ["Container", "cpu", "100m", "1", "200m", "500m", "4"],
        ["Container", "memory", "64Mi", "1Gi", "128Mi", "256Mi", "-"],
        ["Pod", "cpu", "-", "1500m", "-", "-", "-"], ["PersistentVolumeClaim", "storage", "1Gi", "5Gi", "-", "-", "-"]])

    apply(server, pod("plain"), "bounded")
    created = json.loads(server.kubectl("get", "pod", "plain", "-n", "bounded", "-o", "json").stdout)
    assert created["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                                             "requests": {"cpu": "200m", "memory": "128Mi"}}
    assert created["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for container app")
    assert created["status"]["qosClass"] == "Burstable"

    refused = apply(server, pod("big", container("app", {"cpu": "2", "memory": "32Mi"}, {"cpu": "2"})), "bounded",
                    check=False)
    assert refused.returncode != 0
    assert ('Error from server (Forbidden): error when creating "STDIN": pods "big" is forbidden: [minimum memory '
            'usage per Container is 64Mi, but request is 32Mi, maximum cpu usage per Container is 1, but limit is 2, '
            'maximum cpu usage per Pod is 1500m, but limit is 2]') in refused.stderr
    ratio = server.kubectl("run", "spiky", "-n", "bounded", "--image=busybox", "--overrides", json.dumps(
        {"spec": {"containers": [container("spiky", {"cpu": "100m"}, {"cpu": "1"})]}}), check=False)
    assert ('pods "spiky" is forbidden: cpu max limit to request ratio per Container is 4, but provided ratio is '
            '10.000000') in ratio.stderr
    pair = pod("pair", container("a", {"cpu": "800m"}, {"cpu": "800m"}),
               container("b", {"cpu": "800m"}, {"cpu": "800m"}))
    total = apply(server, pair, "bounded", check=False)
    assert 'pods "pair" is forbidden: maximum cpu usage per Pod is 1500m, but limit is 1600m' in total.stderr

    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}
    refused = apply(server, claim, "bounded", check=False)
    assert ('persistentvolumeclaims "data" is forbidden: maximum storage usage per PersistentVolumeClaim is 5Gi, but '
            'request is 10Gi') in refused.stderr
    claim["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert "persistentvolumeclaim/data created" in apply(server, claim, "bounded").stdout

    # Other namespaces are not bounded; deleting the range lifts the bounds.
    apply(server, pod("big", container("app", {"cpu": "2"}, {"cpu": "2"})), "default")
    server.kubectl("delete", "limitrange", "bounds", "-n", "bounded")
    assert "pod/big created" in apply(server, pod("big", container("app", {"cpu": "2"}, {"cpu": "2"})),
                                      "bounded").stdout


def test_ingresses_without_a_class_get_the_default_class(module_server):
    server = module_server
    server.kubectl("create", "namespace", "web")
    server.kubectl("create", "ingress", "before", "-n", "web", "--rule=a.example.com/=svc:80")
    before = json.loads(server.kubectl("get", "ingress", "before", "-n", "web", "-o", "json").stdout)
    assert "ingressClassName" not in before["spec"]
    for name, default in (("nginx", "true"), ("other", "false")):
        server.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name, "annotations": {"ingressclass.kubernetes.io/is-default-class": default}},
            "spec": {"controller": f"example.com/{name}"}}))
    server.kubectl("create", "ingress", "typed", "-n", "web", "--rule=b.example.com/=svc:80")  # protobuf
    server.kubectl("apply", "-n", "web", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "applied"},
        "spec": {"defaultBackend": {"service": {"name": "svc", "port": {"number": 80}}}}}))
    server.kubectl("create", "ingress", "chosen", "-n", "web", "--class=other", "--rule=c.example.com/=svc:80")
    rows = {line.split()[0]: line.split()[1] for line in
            server.kubectl("get", "ingress", "-n", "web").stdout.splitlines()[1:]}
    assert rows == {"before": "<none>", "typed": "nginx", "applied": "nginx", "chosen": "other"}
    # A later apply of the same manifest keeps the class the admission gave it.
    again = server.kubectl("apply", "-n", "web", "-f", "-", input=json.dumps({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "applied"},
        "spec": {"defaultBackend": {"service": {"name": "svc", "port": {"number": 80}}}}}))
    assert "unchanged" in again.stdout
