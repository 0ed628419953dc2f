"""Workload kinds: defaulting, validation messages, tables, scale views, delete propagation finalizers."""
import datetime

from apiserver.deletion_propagation import gc_finalizers
from apiserver.errors import invalid_object
from apiserver.kinds.scale import scale_of
from apiserver.kinds.workload_tables import deployment_row, replica_set_row, selector_string
from apiserver.kinds.workloads import DeploymentStrategy, ReplicaSetStrategy, ReplicationControllerStrategy
from apiserver.patch import STRATEGIC_MERGE_PATCH, apply_patch

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def deployment(**spec):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2025-12-31T23:58:00Z"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1", "command": ["sleep"]}]}},
                     **spec}}


def messages(strategy, obj):
    problems = strategy.validate(obj)
    return invalid_object(strategy.info.group, strategy.info.kind, "web", problems).message if problems else ""


def test_deployment_defaults_as_upstream():
    obj = deployment()
    DeploymentStrategy().default(obj)
    spec = obj["spec"]
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    pod_spec = spec["template"]["spec"]
    assert pod_spec["restartPolicy"] == "Always" and pod_spec["dnsPolicy"] == "ClusterFirst"
    assert pod_spec["terminationGracePeriodSeconds"] == 30 and pod_spec["schedulerName"] == "default-scheduler"
    assert "tolerations" not in pod_spec and "priority" not in pod_spec  # pod admission, not template defaults
    assert pod_spec["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    assert DeploymentStrategy().validate(obj) == []


def test_selector_must_match_template_labels():
    obj = deployment()
    obj["spec"]["selector"] = {"matchLabels": {"app": "other"}}
    DeploymentStrategy().default(obj)
    assert messages(DeploymentStrategy(), obj) == (
        'Deployment.apps "web" is invalid: spec.template.metadata.labels: Invalid value: '
        'map[string]string{"app":"web"}: `selector` does not match template `labels`')


def test_validation_messages():
    obj = deployment(replicas=-1)
    obj["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    obj["spec"]["template"]["spec"]["containers"][0].pop("image")
    DeploymentStrategy().default(obj)
    text = messages(DeploymentStrategy(), obj)
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in text
    assert "spec.template.spec.containers[0].image: Required value" in text
    assert 'spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"' in text
    no_selector = deployment()
    del no_selector["spec"]["selector"]
    DeploymentStrategy().default(no_selector)
    assert "spec.selector: Required value" in messages(DeploymentStrategy(), no_selector)
    zero = deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})
    DeploymentStrategy().default(zero)
    assert "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0" in \
        messages(DeploymentStrategy(), zero)
    recreate = deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})
    DeploymentStrategy().default(recreate)
    assert "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'" in \
        messages(DeploymentStrategy(), recreate)


def test_apps_selector_is_immutable_but_rc_selector_is_not():
    old = deployment()
    DeploymentStrategy().default(old)
    old["metadata"].update({"uid": "u", "creationTimestamp": "2025-12-31T23:58:00Z"})
    new = {**old, "spec": {**old["spec"], "selector": {"matchLabels": {"app": "web", "x": "y"}}}}
    new["spec"]["template"] = {**old["spec"]["template"], "metadata": {"labels": {"app": "web", "x": "y"}}}
    problems = DeploymentStrategy().validate_update(new, old)
    assert [p.field for p in problems] == ["spec.selector"] and problems[0].detail == "field is immutable"
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc", "namespace": "d"},
          "spec": {"template": {"metadata": {"labels": {"app": "rc"}},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}}}
    ReplicationControllerStrategy().default(rc)
    assert rc["spec"]["selector"] == {"app": "rc"} and rc["metadata"]["labels"] == {"app": "rc"}
    assert rc["spec"]["replicas"] == 1 and ReplicationControllerStrategy().validate(rc) == []


def test_deployment_generation_ignores_the_revision_annotation():
    strategy = DeploymentStrategy()
    old = deployment()
    new = deployment()
    new["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "2"}
    assert not strategy.spec_changed(new, old)
    new["metadata"]["annotations"]["team"] = "a"
    assert strategy.spec_changed(new, old)


def test_tables():
    obj = deployment(replicas=3)
    obj["spec"]["selector"] = {"matchLabels": {"app": "web"},
                               "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]}]}
    obj["status"] = {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}
    assert deployment_row(obj, NOW).cells == ["web", "2/3", 3, 2, "2m", "c", "busybox:1", "app=web,tier in (a,b)"]
    rs = {"kind": "ReplicaSet", "metadata": {"name": "web-abc", "creationTimestamp": "2025-12-31T23:59:00Z"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": obj["spec"]["template"]},
          "status": {"replicas": 3, "readyReplicas": 1}}
    assert replica_set_row(rs, NOW).cells == ["web-abc", 3, 3, 1, "60s", "c", "busybox:1", "app=web"]
    assert selector_string({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}) == "!a"


def test_scale_view():
    obj = deployment(replicas=4)
    obj["metadata"].update({"uid": "u1", "resourceVersion": "7"})
    obj["status"] = {"replicas": 3}
    scale = scale_of(obj)
    assert scale == {"kind": "Scale", "apiVersion": "autoscaling/v1",
                     "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "7",
                                  "creationTimestamp": "2025-12-31T23:58:00Z"},
                     "spec": {"replicas": 4}, "status": {"replicas": 3, "selector": "app=web"}}


def test_strategic_merge_of_template_containers_keeps_other_fields():
    obj = deployment()
    patched = apply_patch(STRATEGIC_MERGE_PATCH, obj, {"spec": {"template": {"spec": {
        "containers": [{"name": "c", "image": "busybox:2"}]}}}})
    assert patched["spec"]["template"]["spec"]["containers"] == [{"name": "c", "image": "busybox:2",
                                                                  "command": ["sleep"]}]


def test_propagation_policy_finalizers():
    obj = {"metadata": {"finalizers": ["example.com/keep"]}}
    assert gc_finalizers(obj, "Orphan", None) == ["example.com/keep", "orphan"]
    assert gc_finalizers(obj, "Foreground", None) == ["example.com/keep", "foregroundDeletion"]
    assert gc_finalizers(obj, "Background", None) is None
    assert gc_finalizers(obj, None, True) == ["example.com/keep", "orphan"]
    assert gc_finalizers({"metadata": {}}, None, None, default_orphan=True) == ["orphan"]
    assert gc_finalizers({"metadata": {"finalizers": ["orphan"]}}, "Background", None) == []
    assert ReplicationControllerStrategy().orphans_dependents_by_default
    assert not ReplicaSetStrategy().orphans_dependents_by_default
