"""A chart-shaped stack against a `shipmate server` (no nodes: server-side checks only): tests/charts/keyval
(ServiceAccount, Role/RoleBinding, ConfigMap, Secret, headless and regular Services, a StatefulSet with
volumeClaimTemplates, PodDisruptionBudget, NetworkPolicy, an exporter DaemonSet; `{{ include }}` helpers,
`app.kubernetes.io/*` labels) applies unchanged with `kubectl apply -f` of its rendered manifests
(tests/charts/keyval-rendered.yaml), and installs, upgrades (a config change rolls the StatefulSet's template)
and uninstalls through Helm's own Go SDK, leaving nothing behind. Pods reaching Ready needs nodes and volume
binding: tests/e2e/test_chart_release.py.

There is no `helm` binary for this machine; PyPI's helm-python-sdk binds Helm's Go SDK (v4). The Helm parts
run when SHIPMATE_HELM_PYTHON names a Python that has it (`python3 -m venv V && V/bin/pip install
helm-python-sdk`), and are skipped otherwise.
"""
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

CHARTS = Path(__file__).resolve().parents[1] / "charts"
CHART = CHARTS / "keyval"
RENDERED = CHARTS / "keyval-rendered.yaml"   # release "demo" in namespace "shop", default values
HELM_PYTHON = os.environ.get("SHIPMATE_HELM_PYTHON", sys.executable)  # the test extras have helm-python-sdk
needs_helm = pytest.mark.skipif(not HELM_PYTHON, reason="SHIPMATE_HELM_PYTHON (a Python with helm-python-sdk) "
                                                        "is not set")
# What a namespace holds of its own (not a release's) and what is not a leftover (events expire on their own).
NAMESPACE_DEFAULTS = {"configmap/kube-root-ca.crt", "serviceaccount/default"}
KINDS = ("all,configmaps,secrets,serviceaccounts,roles,rolebindings,persistentvolumeclaims,poddisruptionbudgets,"
         "networkpolicies,controllerrevisions,endpoints,endpointslices")
HELM = textwrap.dedent("""\
    import json, sys
    import helm_python as helm
    kubeconfig, action, chart, release, namespace, values = sys.argv[1:7]
    values = json.loads(values)
    with helm.Config(namespace=namespace, kubeconfig_path=kubeconfig, storage_driver="secret") as cfg:
        if action == "install":
            result = cfg.install(chart, release, values, namespace=namespace, create_namespace=True, timeout=60)
            print(result["status"])
        elif action == "upgrade":
            result = cfg.upgrade(chart, release, values, namespace=namespace, timeout=60)
            print(result["status"])
        else:
            print(cfg.uninstall(release, timeout=60)["release"]["status"])
    """)


def helm(server, action: str, release: str, namespace: str, values: dict | None = None) -> str:
    result = subprocess.run([HELM_PYTHON, "-c", HELM, server.kubeconfig, action, str(CHART), release, namespace,
                             json.dumps(values or {})], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def names(server, namespace: str, kinds: str = KINDS) -> set[str]:
    listed = server.kubectl("get", kinds, "-n", namespace, "-o", "name").stdout.split()
    return {name.replace(".rbac.authorization.k8s.io", "").replace(".policy", "").replace(".apps", "")
            .replace(".networking.k8s.io", "").replace(".discovery.k8s.io", "") for name in listed}


def get(server, namespace: str, target: str) -> dict:
    return json.loads(server.kubectl("get", target, "-n", namespace, "-o", "json").stdout)


def check_stack(server, namespace: str, release: str) -> None:
    """The objects of the chart as created, and what the controllers made of them."""
    full = f"{release}-keyval"
    present = names(server, namespace)
    for expected in (f"serviceaccount/{full}", f"role/{full}", f"rolebinding/{full}", f"configmap/{full}",
                     f"secret/{full}", f"service/{full}", f"service/{full}-headless", f"statefulset/{full}",
                     f"poddisruptionbudget/{full}", f"networkpolicy/{full}", f"daemonset/{full}-exporter"):
        assert expected in present, (expected, sorted(present))
    headless = get(server, namespace, f"service/{full}-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert get(server, namespace, f"service/{full}")["spec"]["clusterIP"] not in ("", "None")
    labels = get(server, namespace, f"statefulset/{full}")["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == release and labels["app.kubernetes.io/component"] == "store"
    # The StatefulSet controller's first claim and pod (OrderedReady: one at a time until each is ready).
    wait_for(lambda: f"persistentvolumeclaim/data-{full}-0" in names(server, namespace, "pvc"), what="claim")
    claim = get(server, namespace, f"pvc/data-{full}-0")
    assert claim["spec"]["resources"]["requests"]["storage"] == "64Mi"
    assert claim["metadata"]["labels"]["app.kubernetes.io/component"] == "store"
    wait_for(lambda: f"pod/{full}-0" in names(server, namespace, "pods"), what="first pod")
    binding = get(server, namespace, f"rolebinding/{full}")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": full, "namespace": namespace}]


def wait_empty(server, namespace: str) -> None:
    def leftovers():
        left = names(server, namespace) - NAMESPACE_DEFAULTS
        return None if left else True
    try:
        wait_for(leftovers, timeout=60, what="no leftovers")
    except AssertionError:
        raise AssertionError(f"left behind in {namespace}: {sorted(names(server, namespace) - NAMESPACE_DEFAULTS)}")


def test_kubectl_apply_of_the_rendered_chart(module_server):
    server = module_server
    server.kubectl("create", "namespace", "shop")
    applied = server.kubectl("apply", "-f", str(RENDERED)).stdout.splitlines()
    assert len(applied) == 11 and all(line.endswith(" created") for line in applied), applied
    check_stack(server, "shop", "demo")
    again = dict(line.rsplit(" ", 1) for line in server.kubectl("apply", "-f", str(RENDERED)).stdout.splitlines())
    # kubectl always re-sends a PDB's selector (patchStrategy replace) and a StatefulSet's volumeClaimTemplates
    # (an atomic list the server completes with claim defaults): "configured" against any server.
    assert {name for name, verb in again.items() if verb != "unchanged"} <= {
        "poddisruptionbudget.policy/demo-keyval", "statefulset.apps/demo-keyval"}, again
    assert get(server, "shop", "statefulset/demo-keyval")["metadata"]["generation"] == 1
    server.kubectl("delete", "-f", str(RENDERED), "--wait=false", timeout=60)
    wait_empty(server, "shop")


@needs_helm
def test_rendered_manifests_are_the_charts():
    result = subprocess.run([HELM_PYTHON, str(CHARTS / "render.py"), str(CHART), "demo", "shop"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout == RENDERED.read_text(), "re-render tests/charts/keyval-rendered.yaml (see render.py)"


@needs_helm
def test_helm_install_upgrade_uninstall(module_server):
    server = module_server
    assert helm(server, "install", "demo", "released") == "deployed"
    check_stack(server, "released", "demo")
    releases = names(server, "released", "secrets")
    assert "secret/sh.helm.release.v1.demo.v1" in releases
    before = get(server, "released", "statefulset/demo-keyval")
    checksum = before["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    wait_for(lambda: get(server, "released", "statefulset/demo-keyval").get("status", {}).get("updateRevision"),
             what="first revision")
    first = get(server, "released", "statefulset/demo-keyval")["status"]["updateRevision"]

    assert helm(server, "upgrade", "demo", "released", {"config": {"greeting": "bonjour"}}) == "deployed"
    assert get(server, "released", "configmap/demo-keyval")["data"]["greeting"] == "bonjour"
    after = get(server, "released", "statefulset/demo-keyval")
    assert after["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    updated = wait_for(lambda: (lambda rev: rev if rev and rev != first else None)(
        get(server, "released", "statefulset/demo-keyval").get("status", {}).get("updateRevision")),
        what="a new update revision")
    revisions = names(server, "released", "controllerrevisions")
    assert f"controllerrevision/{first}" in revisions and f"controllerrevision/{updated}" in revisions
    assert "secret/sh.helm.release.v1.demo.v2" in names(server, "released", "secrets")

    assert helm(server, "uninstall", "demo", "released") == "uninstalled"
    wait_empty(server, "released")
