"""apiregistration.k8s.io/v1 APIServices with real kubectl: Local APIServices for every served group-version
(CRD groups too, removed with them), an aggregated APIService stored with upstream's validation and reported not
available (aggregation is not proxied), and kubectl's columns."""
import json
import shutil

import pytest

from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

WARDLE = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
          "metadata": {"name": "v1alpha1.wardle.k8s.io"},
          "spec": {"insecureSkipTLSVerify": True, "group": "wardle.k8s.io", "groupPriorityMinimum": 1000,
                   "versionPriority": 15, "service": {"name": "api", "namespace": "wardle"}, "version": "v1alpha1"}}


def kubectl(server, *args, body=None, check=True):
    return server.kubectl(*args, input=json.dumps(body) if body is not None else None, check=check)


def available(server, name):
    result = kubectl(server, "get", "apiservice", name, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    return next((c for c in json.loads(result.stdout).get("status", {}).get("conditions", [])
                 if c["type"] == "Available"), None)


def test_local_apiservices_follow_served_group_versions(module_server):
    srv = module_server
    condition = wait_for(lambda: available(srv, "v1.apps"), timeout=20)
    assert (condition["status"], condition["reason"]) == ("True", "Local")
    rows = kubectl(srv, "get", "apiservices").stdout.splitlines()
    assert rows[0].split() == ["NAME", "SERVICE", "AVAILABLE", "AGE"]
    assert any(r.split()[:3] == ["v1.apps", "Local", "True"] for r in rows)
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.registered.example.com"},
           "spec": {"group": "registered.example.com", "scope": "Cluster", "names": {"plural": "things",
                                                                                       "kind": "Thing"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                        "openAPIV3Schema": {"type": "object"}}}]}}
    kubectl(srv, "apply", "-f", "-", body=crd)
    wait_for(lambda: available(srv, "v1.registered.example.com"), timeout=20)
    kubectl(srv, "delete", "crd", "things.registered.example.com", "--timeout=30s")
    wait_for(lambda: available(srv, "v1.registered.example.com") is None, timeout=20)


def test_aggregated_apiservice_is_stored_and_reported(module_server):
    srv = module_server
    assert "created" in kubectl(srv, "apply", "-f", "-", body=WARDLE).stdout
    condition = wait_for(lambda: available(srv, "v1alpha1.wardle.k8s.io"), timeout=20)
    assert (condition["status"], condition["reason"]) == ("False", "ServiceNotFound")
    assert condition["message"] == 'service/api in "wardle" is not present'
    stored = json.loads(kubectl(srv, "get", "apiservice", "v1alpha1.wardle.k8s.io", "-o", "json").stdout)
    assert stored["spec"]["service"]["port"] == 443
    bad = dict(WARDLE, metadata={"name": "v1.wrong.example.com"})
    result = kubectl(srv, "apply", "-f", "-", body=bad, check=False)
    assert 'metadata.name: Invalid value: "v1.wrong.example.com": must be `spec.version+"."+spec.group`' \
        in result.stderr
    kubectl(srv, "delete", "apiservice", "v1alpha1.wardle.k8s.io")
