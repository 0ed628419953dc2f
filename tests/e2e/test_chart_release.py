"""The chart-shaped stack (tests/charts/keyval) on the `make up` cluster: applied unchanged with `kubectl apply -f`
of its rendered manifests, every pod reaches Ready (three StatefulSet replicas on their own claims, an exporter
on every node), a rolling StatefulSet update completes, and deleting it leaves nothing behind; with
SHIPMATE_HELM_PYTHON (a Python with helm-python-sdk) the same through `helm install/upgrade/uninstall`.

Claims need a default StorageClass and a provisioner: without one the test is skipped (server-side checks of the
same stack: tests/integration/test_chart_release.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Callable

import pytest

from tests.e2e.cluster import ADMIN_KUBECONFIG, Kubectl, unique_name
from tests.integration.test_chart_release import CHART, HELM, NAMESPACE_DEFAULTS, RENDERED

pytestmark = pytest.mark.e2e
HELM_PYTHON = os.environ.get("SHIPMATE_HELM_PYTHON", sys.executable)  # the test extras have helm-python-sdk
KINDS = ("all,configmaps,secrets,serviceaccounts,roles,rolebindings,persistentvolumeclaims,poddisruptionbudgets,"
         "networkpolicies,controllerrevisions")


@pytest.fixture
def default_storage_class(kubectl: Kubectl) -> str:
    listed = kubectl.run("get", "storageclasses", "-o", "json", check=False)
    if listed.returncode != 0:
        pytest.skip(f"no StorageClasses on this cluster ({listed.stderr.strip()}): claims cannot bind")
    for storage_class in json.loads(listed.stdout).get("items", []):
        annotations = storage_class["metadata"].get("annotations") or {}
        if annotations.get("storageclass.kubernetes.io/is-default-class") == "true":
            return storage_class["metadata"]["name"]
    pytest.skip("no default StorageClass (annotation storageclass.kubernetes.io/is-default-class): the chart's "
                "claims cannot bind")


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(1)


def stack_ready(kubectl: Kubectl, namespace: str, release: str) -> bool:
    statefulset = kubectl.json("get", "statefulset", f"{release}-keyval", "-n", namespace)
    daemonset = kubectl.json("get", "daemonset", f"{release}-keyval-exporter", "-n", namespace)
    status, ds_status = statefulset.get("status") or {}, daemonset.get("status") or {}
    return (status.get("readyReplicas") == 3 and status.get("currentRevision") == status.get("updateRevision")
            and status.get("updatedReplicas") == 3 and ds_status.get("desiredNumberScheduled", 0) > 0
            and ds_status.get("numberReady") == ds_status.get("desiredNumberScheduled"))


def leftovers(kubectl: Kubectl, namespace: str) -> set[str]:
    names = kubectl.run("get", KINDS, "-n", namespace, "-o", "name").stdout.split()
    return {name.split("/", 1)[0].split(".")[0] + "/" + name.split("/", 1)[1] for name in names} - NAMESPACE_DEFAULTS


def test_rendered_chart_applies_reaches_ready_rolls_and_goes(kubectl: Kubectl, namespace: str,
                                                              default_storage_class: str) -> None:
    manifests = RENDERED.read_text().replace("namespace: shop", f"namespace: {namespace}")
    kubectl.run("apply", "-f", "-", stdin=manifests)
    eventually(lambda: stack_ready(kubectl, namespace, "demo"), 300, "the stack Ready")
    claims = kubectl.json("get", "pvc", "-n", namespace)["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == [f"data-demo-keyval-{i}" for i in range(3)]
    assert all(c["status"].get("phase") == "Bound" for c in claims)
    first = kubectl.json("get", "statefulset", "demo-keyval", "-n", namespace)["status"]["updateRevision"]

    kubectl.run("rollout", "restart", "statefulset/demo-keyval", "-n", namespace)
    eventually(lambda: kubectl.json("get", "statefulset", "demo-keyval", "-n", namespace)["status"].get(
        "updateRevision") != first and stack_ready(kubectl, namespace, "demo"), 300, "the rolling update")
    # kubectl's StatefulSet status viewer: "statefulset rolling update complete 3 pods at revision <rev>..."
    assert "statefulset rolling update complete 3 pods" in kubectl.run("rollout", "status", "statefulset/demo-keyval",
                                                                       "-n", namespace, timeout=120).stdout

    kubectl.run("delete", "-f", "-", "--wait=true", stdin=manifests, timeout=180)
    eventually(lambda: not leftovers(kubectl, namespace) or None, 120, "nothing left behind")


@pytest.mark.skipif(not HELM_PYTHON, reason="SHIPMATE_HELM_PYTHON (a Python with helm-python-sdk) is not set")
def test_helm_install_upgrade_uninstall(kubectl: Kubectl, default_storage_class: str) -> None:
    namespace = unique_name("e2e-helm")

    def helm(action: str, values: dict | None = None) -> str:
        result = subprocess.run([HELM_PYTHON, "-c", HELM, ADMIN_KUBECONFIG, action, str(CHART), "demo", namespace,
                                 json.dumps(values or {})], capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout.strip()
    try:
        assert helm("install") == "deployed"
        eventually(lambda: stack_ready(kubectl, namespace, "demo"), 300, "the release Ready")
        first = kubectl.json("get", "statefulset", "demo-keyval", "-n", namespace)["status"]["updateRevision"]
        assert helm("upgrade", {"config": {"greeting": "bonjour"}}) == "deployed"
        eventually(lambda: kubectl.json("get", "statefulset", "demo-keyval", "-n", namespace)["status"].get(
            "updateRevision") != first and stack_ready(kubectl, namespace, "demo"), 300, "the upgrade rolled out")
        pods = kubectl.json("get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=store")["items"]
        assert all(any(e.get("name") == "GREETING" for e in p["spec"]["containers"][0]["env"]) for p in pods)
        assert helm("uninstall") == "uninstalled"
        eventually(lambda: not leftovers(kubectl, namespace) or None, 180, "nothing left behind")
    finally:
        kubectl.run("delete", "namespace", namespace, "--wait=false", check=False)

