"""Helm releases against a `shipmate server`: install, upgrade and uninstall of a small chart (a ConfigMap and a
PodDisruptionBudget). Helm keeps its releases in Secrets and deletes them with a protobuf DeleteOptions body.

No `helm` binary is packaged for this machine (Debian, npm); PyPI's helm-python-sdk binds Helm's own Go SDK
(v4) through a C library. It is a test dependency; SHIPMATE_HELM_PYTHON may name another Python that has it
(`python3 -m venv V && V/bin/pip install helm-python-sdk`), otherwise this test is skipped."""
import os
import sys
import subprocess
import textwrap

import pytest

HELM_PYTHON = os.environ.get("SHIPMATE_HELM_PYTHON", sys.executable)  # the test extras have helm-python-sdk
pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not HELM_PYTHON, reason="no Python with helm-python-sdk")]

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    "values.yaml": "greeting: hello\n",
    "templates/objects.yaml": textwrap.dedent("""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-cm
        data:
          greeting: {{ .Values.greeting }}
        ---
        apiVersion: policy/v1
        kind: PodDisruptionBudget
        metadata:
          name: {{ .Release.Name }}-pdb
        spec:
          minAvailable: 1
          selector:
            matchLabels:
              app: {{ .Release.Name }}
        """),
}
SCRIPT = textwrap.dedent("""\
    import sys
    import helm_python as helm
    with helm.Config(namespace="default", kubeconfig_path=sys.argv[1], storage_driver="secret") as cfg:
        print("install", cfg.install(sys.argv[2], "demo", {"greeting": "hi"}, timeout=60)["status"])
        print("upgrade", cfg.upgrade(sys.argv[2], "demo", {"greeting": "hey"})["status"])
        print("uninstall", cfg.uninstall("demo")["release"]["status"])
    """)


def test_install_upgrade_uninstall(server, tmp_path):
    for name, text in CHART.items():
        (tmp_path / "chart" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "chart" / name).write_text(text)
    result = subprocess.run([HELM_PYTHON, "-c", SCRIPT, server.kubeconfig,
                             str(tmp_path / "chart")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["install", "deployed", "upgrade", "deployed", "uninstall", "uninstalled"]
    assert server.kubectl("get", "secrets,configmaps,pdb", "-l", "owner=helm", "-o", "name").stdout == ""
    assert server.request("GET", "/api/v1/namespaces/default/configmaps/demo-cm")[0] == 404
