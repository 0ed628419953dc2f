"""Pod Security admission against a real `shipmate server`, driven by the real kubectl.

A namespace labelled `pod-security.kubernetes.io/enforce=baseline` refuses privileged, host-namespace,
hostPath and extra-capability pods with upstream's 403 and stores nothing; `restricted` demands the
hardened settings; `warn` and workload templates produce kubectl `Warning:` lines; tightening a
namespace warns about its existing pods; bad label values are refused."""
from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.test_apiserver_kubectl import Server
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

IMAGE = "127.0.0.1:5000/library/busybox:latest"
RESTRICTED_CONTEXT = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 1000,
                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def pod(name: str, security: dict | None = None, **spec) -> str:
    container = {"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}
    if security is not None:
        container["securityContext"] = security
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"containers": [container], **spec}})


def namespace(server: Server, name: str, *labels: str) -> None:
    server.kubectl("create", "namespace", name)
    if labels:
        server.kubectl("label", "namespace", name, *labels)


def refused(server: Server, ns: str, manifest: str) -> str:
    """kubectl create of the manifest fails; returns the server's message."""
    result = server.kubectl("create", "-n", ns, "-f", "-", input=manifest, check=False)
    assert result.returncode != 0, result.stdout
    prefix = 'Error from server (Forbidden): error when creating "STDIN": '
    assert result.stderr.startswith(prefix), result.stderr
    return result.stderr[len(prefix):].strip()


def stored(server: Server, ns: str, name: str) -> bool:
    return server.kubectl("get", "pod", "-n", ns, name, check=False).returncode == 0


def test_baseline_enforce_refuses_privileged_host_access_and_capabilities(server):
    namespace(server, "psa-base", "pod-security.kubernetes.io/enforce=baseline")
    cases = {
        "priv": (pod("priv", {"privileged": True}),
                 'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must '
                 'not set securityContext.privileged=true)'),
        "hostpath": (pod("hostpath", volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
                     'pods "hostpath" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes '
                     '(volume "root")'),
        "hostnet": (pod("hostnet", hostNetwork=True, hostPID=True),
                    'pods "hostnet" is forbidden: violates PodSecurity "baseline:latest": host namespaces '
                    '(hostNetwork=true, hostPID=true)'),
        "caps": (pod("caps", {"capabilities": {"add": ["SYS_ADMIN", "NET_RAW"]}}),
                 'pods "caps" is forbidden: violates PodSecurity "baseline:latest": non-default capabilities '
                 '(container "c" must not include "NET_RAW", "SYS_ADMIN" in securityContext.capabilities.add)'),
        "all": (pod("all", {"privileged": True}, hostNetwork=True, volumes=[{"name": "v", "hostPath": {"path": "/"}}]),
                'pods "all" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), '
                'hostPath volumes (volume "v"), privileged (container "c" must not set securityContext.privileged=true)'),
    }
    for name, (manifest, message) in cases.items():
        assert refused(server, "psa-base", manifest) == message
        assert not stored(server, "psa-base", name)
    # the same pods are fine in an unlabelled (privileged) namespace, and a plain pod passes baseline
    server.kubectl("create", "-n", "default", "-f", "-", input=cases["priv"][0])
    server.kubectl("create", "-n", "psa-base", "-f", "-", input=pod("plain"))
    # raw HTTP: upstream's Status (403, reason Forbidden, details)
    code, status = server.request("POST", "/api/v1/namespaces/psa-base/pods", json.loads(pod("raw", {"privileged": True})))
    assert (code, status["reason"], status["details"]) == (403, "Forbidden", {"name": "raw", "kind": "pods"})


def test_restricted_demands_hardened_pods_and_accepts_a_compliant_one(server):
    namespace(server, "psa-restricted", "pod-security.kubernetes.io/enforce=restricted")
    assert refused(server, "psa-restricted", pod("root")) == (
        'pods "root" is forbidden: violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false '
        '(container "c" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
        '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container '
        '"c" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")')
    uid0 = dict(RESTRICTED_CONTEXT, runAsUser=0, capabilities={"drop": ["ALL"], "add": ["NET_ADMIN"]})
    assert refused(server, "psa-restricted", pod("uid0", uid0)) == (
        'pods "uid0" is forbidden: violates PodSecurity "restricted:latest": unrestricted capabilities (container "c" '
        'must not include "NET_ADMIN" in securityContext.capabilities.add), runAsUser=0 (container "c" must not set '
        'runAsUser=0)')
    assert not stored(server, "psa-restricted", "root") and not stored(server, "psa-restricted", "uid0")
    created = server.kubectl("create", "-n", "psa-restricted", "-f", "-", input=pod("hardened", RESTRICTED_CONTEXT))
    assert "Warning" not in created.stderr
    assert stored(server, "psa-restricted", "hardened")


def test_warn_level_prints_kubectl_warnings_and_admits(server):
    namespace(server, "psa-warn", "pod-security.kubernetes.io/warn=restricted",
              "pod-security.kubernetes.io/warn-version=v1.35")
    result = server.kubectl("create", "-n", "psa-warn", "-f", "-", input=pod("loose", {"privileged": True}))
    assert result.stderr.splitlines() == [
        'Warning: would violate PodSecurity "restricted:v1.35": privileged (container "c" must not set '
        'securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" must set '
        'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container "c" must set '
        'securityContext.capabilities.drop=["ALL"]), runAsNonRoot != true (pod or container "c" must set '
        'securityContext.runAsNonRoot=true), seccompProfile (pod or container "c" must set '
        'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")']
    assert stored(server, "psa-warn", "loose")


def test_deployment_with_a_violating_template_is_warned_and_created_but_its_pods_are_refused(server):
    namespace(server, "psa-deploy", "pod-security.kubernetes.io/enforce=baseline",
              "pod-security.kubernetes.io/warn=baseline")
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"hostNetwork": True,
                                                 "containers": [{"name": "web", "image": IMAGE}]}}}}
    result = server.kubectl("create", "-n", "psa-deploy", "-f", "-", input=json.dumps(deployment))
    assert result.stderr.strip() == 'Warning: would violate PodSecurity "baseline:latest": host namespaces ' \
                                    '(hostNetwork=true)'
    assert server.kubectl("get", "deployment", "-n", "psa-deploy", "web").returncode == 0

    def refusal_event():
        events = json.loads(server.kubectl("get", "events", "-n", "psa-deploy", "-o", "json").stdout)["items"]
        return next((e for e in events if e["reason"] == "FailedCreate"
                     and 'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)' in e["message"]),
                    None)
    wait_for(refusal_event, timeout=30, what="the ReplicaSet's FailedCreate event")
    pods = json.loads(server.kubectl("get", "pods", "-n", "psa-deploy", "-o", "json").stdout)["items"]
    assert pods == []


def test_labelling_a_namespace_warns_about_existing_pods_and_bad_labels_are_refused(server):
    namespace(server, "psa-label")
    for name in ("a", "b"):
        server.kubectl("create", "-n", "psa-label", "-f", "-", input=pod(name, {"privileged": True}))
    server.kubectl("create", "-n", "psa-label", "-f", "-", input=pod("c", hostIPC=True))
    result = server.kubectl("label", "namespace", "psa-label", "pod-security.kubernetes.io/enforce=baseline")
    assert result.stderr.splitlines() == [
        'Warning: existing pods in namespace "psa-label" violate the new PodSecurity enforce level "baseline:latest"',
        "Warning: a (and 1 other pod): privileged",
        "Warning: c: host namespaces"]
    assert "namespace/psa-label labeled" in result.stdout
    bad = server.kubectl("label", "--overwrite", "namespace", "psa-label",
                         "pod-security.kubernetes.io/enforce=strict", check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip() == (
        'The Namespace "psa-label" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
        '"strict": must be one of privileged, baseline, restricted')
    labels = json.loads(server.kubectl("get", "namespace", "psa-label", "-o", "json").stdout)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"


def test_server_default_policy_applies_to_unlabelled_namespaces(tmp_path):
    server = Server(tmp_path)
    server.extra_args = ["--pod-security-default", "enforce=baseline,warn=restricted",
                         "--pod-security-exempt-namespaces", "kube-system"]
    server.start()
    try:
        assert refused(server, "default", pod("priv", {"privileged": True})) == (
            'pods "priv" is forbidden: violates PodSecurity "baseline:latest": privileged (container "c" must not set '
            'securityContext.privileged=true)')
        server.kubectl("create", "-n", "kube-system", "-f", "-", input=pod("priv", {"privileged": True}))
        warned = server.kubectl("create", "-n", "default", "-f", "-", input=pod("plain"))
        assert warned.stderr.startswith('Warning: would violate PodSecurity "restricted:latest": ')
    finally:
        server.stop()
