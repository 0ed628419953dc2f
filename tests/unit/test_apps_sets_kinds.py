"""DaemonSet, StatefulSet, ControllerRevision and PersistentVolumeClaim kinds: defaulting, validation messages,
tables, the scale view."""
import datetime

from apiserver.errors import invalid_object
from apiserver.kinds.controllerrevisions import ControllerRevisionStrategy, controller_revision_row
from apiserver.kinds.daemonsets import DaemonSetStrategy, daemonset_row
from apiserver.kinds.persistentvolumeclaims import PersistentVolumeClaimStrategy, pvc_row
from apiserver.kinds.scale import scale_of
from apiserver.kinds.statefulsets import StatefulSetStrategy, statefulset_row

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
CREATED = "2025-12-31T23:58:00Z"


def workload(kind, **spec):
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": "web", "namespace": "default",
                                                                "creationTimestamp": CREATED},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}, **spec}}


def message(strategy, obj, old=None):
    problems = strategy.validate(obj) if old is None else strategy.validate_update(obj, old)
    return invalid_object(strategy.info.group, strategy.info.kind, "web", problems).message if problems else ""


def test_daemonset_defaults_validation_and_columns():
    strategy = DaemonSetStrategy()
    obj = workload("DaemonSet")
    strategy.default(obj)
    assert obj["spec"]["updateStrategy"] == {"type": "RollingUpdate",
                                             "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert obj["spec"]["revisionHistoryLimit"] == 10
    assert obj["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert strategy.validate(obj) == []
    strategy.prepare_for_create(obj)
    assert obj["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"
    changed = workload("DaemonSet")
    changed["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"
    strategy.prepare_for_update(changed, obj)
    assert changed["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "2"
    same = workload("DaemonSet")
    strategy.prepare_for_update(same, obj)  # an undefaulted but equal template is no new generation
    assert same["metadata"]["annotations"]["deprecated.daemonset.template.generation"] == "1"

    bad = workload("DaemonSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "x%"}})
    bad["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    bad["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    text = message(strategy, bad)
    assert 'spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: "x%": a valid percent string must be' in text
    assert 'spec.template.spec.restartPolicy: Unsupported value: "OnFailure": supported values: "Always"' in text
    assert "spec.template.spec.activeDeadlineSeconds: Invalid value: 5: activeDeadlineSeconds in DaemonSet is not " \
           "Supported" in text
    assert 'spec.updateStrategy: Unsupported value: "Sometimes": supported values: "RollingUpdate", "OnDelete"' in \
        message(strategy, workload("DaemonSet", updateStrategy={"type": "Sometimes"}))
    assert "spec.updateStrategy.rollingUpdate: Required value" in \
        message(strategy, workload("DaemonSet", updateStrategy={"type": "RollingUpdate"}))
    assert 'Invalid value: "120%": must not be greater than 100%' in message(strategy, workload(
        "DaemonSet", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "120%"}}))

    obj["status"] = {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
                     "updatedNumberScheduled": 1, "numberAvailable": 2}
    obj["spec"]["template"]["spec"]["nodeSelector"] = {"b": "2", "a": "1"}
    assert daemonset_row(obj, NOW).cells == ["web", 3, 3, 2, 1, 2, "a=1,b=2", "2m", "c", "busybox:1", "app=web"]
    assert [c.name for c in strategy.table(NOW).columns] == [
        "Name", "Desired", "Current", "Ready", "Up-to-date", "Available", "Node Selector", "Age", "Containers",
        "Images", "Selector"]


def test_statefulset_defaults_validation_and_columns():
    strategy = StatefulSetStrategy()
    obj = workload("StatefulSet", serviceName="web", volumeClaimTemplates=[{"metadata": {"name": "data"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}])
    obj["spec"]["template"]["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/d"}]
    strategy.default(obj)
    spec = obj["spec"]
    assert (spec["replicas"], spec["podManagementPolicy"], spec["revisionHistoryLimit"]) == (1, "OrderedReady", 10)
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["volumeClaimTemplates"][0] == {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}},
                 "volumeMode": "Filesystem"}, "status": {"phase": "Pending"}}
    assert strategy.validate(obj) == []
    on_delete = workload("StatefulSet", updateStrategy={"type": "OnDelete"})
    strategy.default(on_delete)
    assert on_delete["spec"]["updateStrategy"] == {"type": "OnDelete"}

    bad = workload("StatefulSet", podManagementPolicy="Sometimes", replicas=-1,
                   persistentVolumeClaimRetentionPolicy={"whenDeleted": "Keep", "whenScaled": "Retain"})
    bad["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    strategy.default(bad)
    text = message(strategy, bad)
    assert "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'" in text
    assert "spec.replicas: Invalid value: -1: must be greater than or equal to 0" in text
    assert "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Invalid value: \"Keep\": must be 'Retain' or " \
           "'Delete'" in text
    assert "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not " \
           "Supported" in text
    empty = workload("StatefulSet", selector={})
    strategy.default(empty)
    assert "empty selector is invalid for statefulset" in message(strategy, empty)

    updated = {**obj, "spec": {**obj["spec"], "replicas": 5, "minReadySeconds": 3}}
    assert message(strategy, updated, obj) == ""
    moved = {**obj, "spec": {**obj["spec"], "serviceName": "other"}}
    assert message(strategy, moved, obj) == (
        'StatefulSet.apps "web" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
        "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
        "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")

    strategy.prepare_for_create(obj)
    assert obj["status"] == {"replicas": 0, "availableReplicas": 0}
    obj["status"] = {"replicas": 3, "readyReplicas": 2}
    obj["spec"]["replicas"] = 3
    assert statefulset_row(obj, NOW).cells == ["web", "2/3", "2m", "c", "busybox:1"]
    assert scale_of(obj)["spec"] == {"replicas": 3}
    assert scale_of(obj)["status"] == {"replicas": 3, "selector": "app=web"}


def test_controller_revision_kind():
    strategy = ControllerRevisionStrategy()
    revision = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": "web-abc", "namespace": "default", "creationTimestamp": CREATED,
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
                                                  "uid": "u", "controller": True}]},
                "data": {"spec": {"template": {"$patch": "replace"}}}, "revision": 2}
    assert strategy.validate(revision) == []
    assert "data: Required value: data is mandatory" in message(strategy, {**revision, "data": None})
    assert "revision: Invalid value: -1: must be greater than or equal to 0" in \
        message(strategy, {**revision, "revision": -1})
    assert "data: Invalid value" in message(strategy, {**revision, "data": {"other": 1}}, revision)
    assert controller_revision_row(revision, NOW).cells == ["web-abc", "statefulset.apps/web", 2, "2m"]
    orphan = {**revision, "metadata": {**revision["metadata"], "ownerReferences": []}}
    assert controller_revision_row(orphan, NOW).cells[1] == "<none>"


def test_persistent_volume_claim_kind():
    strategy = PersistentVolumeClaimStrategy()
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "data", "namespace": "default", "creationTimestamp": CREATED},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1024Mi"}}}}
    strategy.default(claim)
    strategy.prepare_for_create(claim)
    assert claim["spec"]["volumeMode"] == "Filesystem" and claim["status"] == {"phase": "Pending"}
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert strategy.validate(claim) == []
    text = message(strategy, {**claim, "spec": {"accessModes": ["Sometimes"], "volumeMode": "Disk",
                                                "resources": {"requests": {"storage": "0"}}}})
    assert 'spec.accessModes: Unsupported value: "Sometimes": supported values: "ReadOnlyMany", "ReadWriteMany", ' \
           '"ReadWriteOnce", "ReadWriteOncePod"' in text
    assert 'spec.resources[storage]: Invalid value: "0": must be greater than zero' in text
    assert 'spec.volumeMode: Unsupported value: "Disk": supported values: "Block", "Filesystem"' in text
    resized = {**claim, "spec": {**claim["spec"], "accessModes": ["ReadWriteMany"]}}
    assert "spec: Forbidden: spec is immutable after creation except resources.requests and " \
           "volumeAttributesClassName for bound claims" in message(strategy, resized, claim)
    binding = {**claim, "spec": {**claim["spec"], "volumeName": "pv-1"}}
    assert message(strategy, binding, claim) == ""  # the first volumeName is the binding
    assert pvc_row(claim, NOW).cells == ["data", "Pending", "", "", "", "", "<unset>", "2m", "Filesystem"]
    bound = {**binding, "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce", "ReadOnlyMany"],
                                   "capacity": {"storage": "1Gi"}}}
    assert pvc_row(bound, NOW).cells[:5] == ["data", "Bound", "pv-1", "1Gi", "RWO,ROX"]
