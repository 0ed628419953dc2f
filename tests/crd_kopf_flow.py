"""An operator written with kopf, run against a cluster (a test server or `make up`'s): it handles create, update
and delete of its custom resources; its status patches, finalizers, children and events behave as on real
Kubernetes. Shared by tests/integration/test_crd_kopf.py and tests/e2e/test_crd_kopf.py.

kopf runs in its own interpreter: $KOPF_PYTHON, else this one when it can import kopf (pip install kopf)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

OPERATOR = '''
import kopf
import kubernetes

kubernetes.config.load_kube_config()
core = kubernetes.client.CoreV1Api()


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_):
    settings.posting.level = 20
    settings.watching.server_timeout = 30


@kopf.on.create("GROUP", "v1", "PLURAL")
def create_fn(spec, name, namespace, body, logger, **_):
    child = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{name}-child"},
             "data": {"food": spec.get("food", "")}}
    kopf.adopt(child)
    core.create_namespaced_config_map(namespace, child)
    kopf.info(body, reason="ChildCreated", message=f"created {name}-child")
    return {"child": f"{name}-child", "food": spec.get("food")}


@kopf.on.update("GROUP", "v1", "PLURAL")
def update_fn(spec, name, namespace, **_):
    core.patch_namespaced_config_map(f"{name}-child", namespace, {"data": {"food": spec.get("food", "")}})
    return {"food": spec.get("food")}


@kopf.on.delete("GROUP", "v1", "PLURAL")
def delete_fn(name, namespace, **_):
    core.create_namespaced_config_map(namespace, {"metadata": {"name": f"{name}-farewell"}, "data": {"bye": name}})
'''


def crd_manifest(group: str, plural: str, kind: str) -> dict:
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{plural}.{group}"},
            "spec": {"group": group, "scope": "Namespaced", "names": {"plural": plural, "kind": kind},
                     "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                                   "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                       "spec": {"type": "object", "properties": {"food": {"type": "string"}}},
                                       "status": {"type": "object",
                                                  "x-kubernetes-preserve-unknown-fields": True}}}}}]}}


def kopf_python() -> str | None:
    if os.environ.get("KOPF_PYTHON"):
        return os.environ["KOPF_PYTHON"]
    return sys.executable if importlib.util.find_spec("kopf") is not None else None


Kubectl = Callable[..., subprocess.CompletedProcess]  # (*args, input=...) -> completed kubectl run (check=True)


def wait(condition: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def run_operator_flow(kubectl: Kubectl, kubeconfig: str, namespace: str, workdir: Path, group: str,
                      plural: str = "pets", kind: str = "Pet") -> None:
    python = kopf_python()
    assert python, "kopf is not installed: pip install kopf (or set KOPF_PYTHON)"

    def get_json(*args: str):
        result = kubectl(*args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    kubectl("apply", "-f", "-", input=json.dumps(crd_manifest(group, plural, kind)))
    wait(lambda: any(c["type"] == "Established" and c["status"] == "True"
                     for c in (get_json("get", "crd", f"{plural}.{group}") or {}).get("status", {}).get(
                         "conditions", [])), 20, "the CRD to be established")
    operator = workdir / "operator.py"
    operator.write_text(OPERATOR.replace("GROUP", group).replace("PLURAL", plural))
    log = open(workdir / "kopf.log", "w")
    process = subprocess.Popen([python, "-m", "kopf", "run", "--standalone", "--namespace", namespace, str(operator)],
                               env={**os.environ, "KUBECONFIG": kubeconfig}, stdout=log, stderr=subprocess.STDOUT)
    try:
        time.sleep(3)
        assert process.poll() is None, (workdir / "kopf.log").read_text()
        pet = {"apiVersion": f"{group}/v1", "kind": kind, "metadata": {"name": "rex"}, "spec": {"food": "bones"}}
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pet))
        resource = f"{plural}.{group}"
        created = wait(lambda: (obj := get_json("get", "-n", namespace, resource, "rex")) and
                       (obj.get("status") or {}).get("create_fn") and obj, 30, "the create handler's status")
        assert created["status"]["create_fn"] == {"child": "rex-child", "food": "bones"}
        assert "kopf.zalando.org/KopfFinalizerMarker" in created["metadata"]["finalizers"]
        assert "kopf.zalando.org/last-handled-configuration" in created["metadata"]["annotations"]
        child = get_json("get", "-n", namespace, "configmap", "rex-child")
        assert child["data"] == {"food": "bones"}
        assert child["metadata"]["ownerReferences"][0]["uid"] == created["metadata"]["uid"]
        assert child["metadata"]["ownerReferences"][0]["controller"] is True
        pet["spec"]["food"] = "steak"
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pet))
        wait(lambda: ((get_json("get", "-n", namespace, resource, "rex") or {}).get("status") or {}).get(
            "update_fn") == {"food": "steak"}, 30, "the update handler's status")
        assert get_json("get", "-n", namespace, "configmap", "rex-child")["data"] == {"food": "steak"}
        wait(lambda: any(e.get("reason") == "ChildCreated" and e.get("message") == "created rex-child" for e in
                         get_json("get", "-n", namespace, "events", "--field-selector",
                                  "involvedObject.name=rex")["items"]), 30, "the operator's event")
        kubectl("delete", "-n", namespace, resource, "rex", "--wait=false")
        wait(lambda: get_json("get", "-n", namespace, resource, "rex") is None, 30, "the finalizer to be removed")
        farewell = get_json("get", "-n", namespace, "configmap", "rex-farewell")
        assert farewell and farewell["data"] == {"bye": "rex"}
        wait(lambda: get_json("get", "-n", namespace, "configmap", "rex-child") is None, 30,
             "the child to be garbage collected")
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        kubectl("delete", "crd", f"{plural}.{group}", "--wait=false", check=False)
