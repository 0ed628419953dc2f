"""Admission webhooks served by a pod in the `make up` cluster, called through a Service (issue 18): a validating
webhook refuses what it should with its message, a mutating webhook adds a label, and with the webhook down
failurePolicy Ignore lets requests through while Fail refuses them.

The webhook pod runs tests/webhook_server.py with the node's own Python (a busybox container chrooted into the
host's root, mounted read-only: the cluster has no Python image), serving a certificate for
`webhook.<namespace>.svc` signed by a CA of the test's own, given to the configurations as caBundle. Every
configuration selects only the test's namespace, so no other test is affected."""
from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from typing import Any, Iterator

import pytest

from shipmate import pki
from tests.e2e.cluster import TEST_IMAGE, Kubectl, pod_manifest
from tests.support import wait_for

pytestmark = pytest.mark.e2e

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PORT = 8443


def _running(kubectl: Kubectl, namespace: str, name: str) -> bool:
    pod = kubectl.json("get", "pod", name, "-n", namespace)
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod["status"].get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


@pytest.fixture
def webhook_backend(kubectl: Kubectl, namespace: str) -> Iterator[bytes]:
    ca_cert, ca_key = pki.make_ca("e2e-webhook-ca")
    cert, key = pki.issue(ca_cert, ca_key, f"webhook.{namespace}.svc",
                          dns_names=[f"webhook.{namespace}.svc", f"webhook.{namespace}.svc.cluster.local"],
                          server=True)
    directory = tempfile.mkdtemp(prefix="shipmate-e2e-webhook-")
    os.chmod(directory, 0o755)
    shutil.copy(os.path.join(REPO, "tests", "webhook_server.py"), os.path.join(directory, "webhook_server.py"))
    for name, data in (("tls.crt", cert), ("tls.key", key)):
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
    command = ["chroot", "/host", "/usr/bin/python3", f"{directory}/webhook_server.py", str(PORT),
               f"{directory}/tls.crt", f"{directory}/tls.key"]
    pod = pod_manifest("webhook", namespace, [{
        "name": "webhook", "image": TEST_IMAGE, "command": command,
        "ports": [{"name": "https", "containerPort": PORT}],
        "readinessProbe": {"tcpSocket": {"port": PORT}, "periodSeconds": 1},
        "securityContext": {"capabilities": {"add": ["SYS_CHROOT"]}},
        "volumeMounts": [{"name": "host", "mountPath": "/host", "readOnly": True}]}],
        volumes=[{"name": "host", "hostPath": {"path": "/"}}], terminationGracePeriodSeconds=1)
    pod["metadata"]["labels"] = {"app": "webhook"}
    kubectl.apply(pod)
    kubectl.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "webhook", "namespace": namespace},
                   "spec": {"selector": {"app": "webhook"},
                            "ports": [{"name": "https", "port": 443, "targetPort": PORT}]}})
    wait_for(lambda: _running(kubectl, namespace, "webhook"), timeout=60, what="the webhook pod ready")
    try:
        yield ca_cert
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def configuration(kind: str, name: str, namespace: str, ca_cert: bytes, path: str, **webhook: Any) -> dict:
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [{"name": f"{name}.e2e.example.com",
                          "clientConfig": {"service": {"name": "webhook", "namespace": namespace, "path": path},
                                           "caBundle": base64.b64encode(ca_cert).decode()},
                          "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                     "resources": ["configmaps"]}],
                          "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                          "sideEffects": "None", "admissionReviewVersions": ["v1"], **webhook}]}


def configmap(name: str, namespace: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace,
                                                                  "labels": labels}, "data": {"k": "v"}}


def test_webhooks_served_by_a_pod(kubectl: Kubectl, namespace: str, webhook_backend: bytes) -> None:
    names = [f"{namespace}-deny", f"{namespace}-label"]
    try:
        kubectl.apply(configuration("ValidatingWebhookConfiguration", names[0], namespace, webhook_backend,
                                    "/validate"))
        kubectl.apply(configuration("MutatingWebhookConfiguration", names[1], namespace, webhook_backend, "/mutate"))
        refused = kubectl.run("apply", "-f", "-", stdin=json.dumps(configmap("no", namespace, deny="yes")),
                              check=False)
        assert refused.returncode != 0
        assert f'admission webhook "{names[0]}.e2e.example.com" denied the request: objects labelled deny=yes are ' \
               f'not allowed' in refused.stderr
        created = kubectl.apply(configmap("yes", namespace))
        assert "Warning: checked by the test webhook" in created.stderr
        labels = kubectl.json("get", "configmap", "yes", "-n", namespace)["metadata"]["labels"]
        assert labels == {"mutated": "yes"}
        kubectl.run("delete", "mutatingwebhookconfiguration", names[1])
        # the webhook goes down: Ignore lets requests through, Fail refuses them
        kubectl.run("delete", "pod", "webhook", "-n", namespace, "--grace-period=1", "--wait=true", timeout=60)
        kubectl.apply(configuration("ValidatingWebhookConfiguration", names[0], namespace, webhook_backend,
                                    "/validate", failurePolicy="Ignore"))
        assert "created" in kubectl.apply(configmap("through", namespace)).stdout
        kubectl.apply(configuration("ValidatingWebhookConfiguration", names[0], namespace, webhook_backend,
                                    "/validate", failurePolicy="Fail"))
        stopped = kubectl.run("apply", "-f", "-", stdin=json.dumps(configmap("stopped", namespace)), check=False)
        assert stopped.returncode != 0
        assert f'failed calling webhook "{names[0]}.e2e.example.com"' in stopped.stderr
    finally:
        kubectl.run("delete", "validatingwebhookconfiguration", names[0], "--ignore-not-found", check=False)
        kubectl.run("delete", "mutatingwebhookconfiguration", names[1], "--ignore-not-found", check=False)
