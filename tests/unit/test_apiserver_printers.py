import datetime

from apiserver.printers import event_row, namespace_row, node_roles, node_row, pod_row, pod_status_reason
from apiserver.tables import TableSpec, human_duration, render_table
from apiserver.printers import POD_COLUMNS

NOW = datetime.datetime(2026, 1, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)


def pod(status=None, deleting=False, **spec):
    meta = {"name": "p", "namespace": "default", "creationTimestamp": "2026-01-01T11:55:00Z"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T12:00:30Z"
    return {"metadata": meta, "spec": {"containers": [{"name": "c"}], **spec}, "status": status or {"phase": "Pending"}}


def waiting(reason):
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}


def test_human_duration():
    cases = {5: "5s", 119: "119s", 120: "2m", 150: "2m30s", 600: "10m", 3 * 3600: "3h", 3 * 3600 + 600: "3h10m",
             9 * 3600: "9h", 50 * 3600: "2d2h", 10 * 86400: "10d", 3 * 365 * 86400: "3y"}
    for seconds, text in cases.items():
        assert human_duration(datetime.timedelta(seconds=seconds)) == text


def test_pod_status_reasons():
    assert pod_status_reason(pod())[0] == "Pending"
    assert pod_status_reason(pod({"phase": "Pending", "containerStatuses": [waiting("ContainerCreating")]}))[0] == \
        "ContainerCreating"
    assert pod_status_reason(pod({"phase": "Pending", "containerStatuses": [waiting("ErrImagePull")]}))[0] == \
        "ErrImagePull"
    assert pod_status_reason(pod({"phase": "Running", "containerStatuses": [waiting("CrashLoopBackOff")]}))[0] == \
        "CrashLoopBackOff"
    completed = {"phase": "Succeeded", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}
    assert pod_status_reason(pod(completed))[0] == "Completed"
    failed = {"phase": "Failed", "containerStatuses": [
        {"name": "c", "ready": False, "restartCount": 0, "state": {"terminated": {"exitCode": 2}}}]}
    assert pod_status_reason(pod(failed))[0] == "ExitCode:2"
    running = {"phase": "Running", "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 0, "state": {"running": {}}}]}
    assert pod_status_reason(pod(running))[:3] == ("Running", 1, 1)
    assert pod_status_reason(pod(running, deleting=True))[0] == "Terminating"
    init = {"phase": "Pending", "initContainerStatuses": [{"name": "i", "restartCount": 0, "state": {"waiting": {"reason": "PodInitializing"}}}]}
    assert pod_status_reason(pod(init, initContainers=[{"name": "i"}]))[0] == "Init:0/1"


def test_pod_row_wide_cells():
    status = {"phase": "Running", "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}], "containerStatuses": [
        {"name": "c", "ready": True, "restartCount": 2, "state": {"running": {}},
         "lastState": {"terminated": {"finishedAt": "2026-01-01T11:59:00Z"}}}]}
    row = pod_row(pod(status, nodeName="node-a"), NOW)
    assert row.cells == ["p", "1/1", "Running", "2 (60s ago)", "5m", "10.244.0.5", "node-a", "<none>", "<none>"]
    assert pod_row(pod(), NOW).cells[5:7] == ["<none>", "<none>"]
    assert len(row.cells) == len(POD_COLUMNS)


def test_node_row():
    node = {"metadata": {"name": "n1", "creationTimestamp": "2026-01-01T10:00:00Z",
                         "labels": {"node-role.kubernetes.io/control-plane": ""}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.35.0", "osImage": "Debian", "kernelVersion": "6.1",
                                    "containerRuntimeVersion": "containerd://1.6.20"}}}
    assert node_row(node, NOW).cells == ["n1", "Ready,SchedulingDisabled", "control-plane", "120m", "v1.35.0",
                                         "10.0.0.1", "<none>", "Debian", "6.1", "containerd://1.6.20"]
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    node["spec"] = {}
    assert node_row(node, NOW).cells[1] == "NotReady"
    assert node_roles({"kubernetes.io/role": "worker", "node-role.kubernetes.io/": "x"}) == ["worker"]


def test_namespace_and_event_rows():
    ns = {"metadata": {"name": "default", "creationTimestamp": "2026-01-01T11:00:00Z"}, "status": {"phase": "Active"}}
    assert namespace_row(ns, NOW).cells == ["default", "Active", "60m"]
    event = {"metadata": {"name": "p.1"}, "type": "Normal", "reason": "Scheduled", "message": "ok ",
             "involvedObject": {"kind": "Pod", "name": "p"}, "source": {"component": "default-scheduler"},
             "firstTimestamp": "2026-01-01T11:59:50Z", "lastTimestamp": "2026-01-01T11:59:55Z", "count": 1}
    assert event_row(event, NOW).cells == ["5s", "Normal", "Scheduled", "pod/p", "", "default-scheduler", "ok",
                                           "10s", 1, "p.1"]


def test_render_table_includes_partial_metadata():
    spec = TableSpec(columns=POD_COLUMNS, row=lambda obj: pod_row(obj, NOW))
    table = render_table(spec, [pod()], "Metadata", "v1", "42")
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"]["resourceVersion"] == "42"
    assert [c["name"] for c in table["columnDefinitions"]][:5] == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert [c["priority"] for c in table["columnDefinitions"]][5:] == [1, 1, 1, 1]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert "object" not in render_table(spec, [pod()], "None", "v1")["rows"][0]
    assert render_table(spec, [pod()], "Object", "v1")["rows"][0]["object"]["spec"]
