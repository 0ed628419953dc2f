"""Admission webhooks against a `shipmate server` with real kubectl, the webhook served on loopback over HTTPS
(a URL target with a caBundle; tests/e2e/test_webhooks.py serves one from a pod behind a Service): refusals with
the webhook's message, a mutating webhook adding a label, failurePolicy Ignore/Fail with the webhook down,
timeouts, selectors, warnings, dry run, AdmissionReview v1 contents, and configurations that cannot intercept
admission configurations."""
import base64
import json
import shutil
import socket

import pytest

from shipmate import pki
from tests.support import wait_for
from tests.webhook_server import WebhookServer

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]


@pytest.fixture(scope="module")
def tls():
    ca_cert, ca_key = pki.make_ca("webhook-test-ca")
    cert, key = pki.issue(ca_cert, ca_key, "127.0.0.1", ip_addresses=["127.0.0.1"], dns_names=["localhost"],
                          server=True)
    return ca_cert, cert, key


@pytest.fixture(scope="module")
def hook(tls):
    server = WebhookServer(tls[1], tls[2]).start()
    yield server
    server.stop()


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def configuration(kind, name, url, ca_cert, **webhook):
    hook = {"name": f"{name}.example.com", "clientConfig": {"url": url,
                                                            "caBundle": base64.b64encode(ca_cert).decode()},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"]}],
            "sideEffects": "None", "admissionReviewVersions": ["v1"], **webhook}
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": [hook]}


def kubectl(server, *args, body=None, check=True):
    return server.kubectl(*args, input=json.dumps(body) if body is not None else None, check=check)


def configmap(name, **labels):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": labels},
            "data": {"a": "b"}}


def test_validating_webhook_refuses_with_its_message(module_server, hook, tls):
    srv = module_server
    config = configuration("ValidatingWebhookConfiguration", "deny", f"https://127.0.0.1:{hook.port}/validate",
                           tls[0], namespaceSelector={"matchLabels": {"kubernetes.io/metadata.name": "default"}})
    kubectl(srv, "apply", "-f", "-", body=config)
    refused = kubectl(srv, "create", "-f", "-", body=configmap("denied", deny="yes"), check=False)
    assert refused.returncode != 0
    assert 'admission webhook "deny.example.com" denied the request: objects labelled deny=yes are not allowed' \
        in refused.stderr
    allowed = kubectl(srv, "create", "-f", "-", body=configmap("allowed"))
    assert "configmap/allowed created" in allowed.stdout
    assert "Warning: checked by the test webhook" in allowed.stderr
    path, review = [r for r in hook.requests if r[0].startswith("/validate")][-1]
    assert path == "/validate?timeout=10s"
    request = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "ConfigMap"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "configmaps"}
    assert request["operation"] == "CREATE" and request["namespace"] == "default" and request["name"] == "allowed"
    assert request["userInfo"]["username"] == "kubernetes-admin" and "system:masters" in request["userInfo"]["groups"]
    assert request["object"]["metadata"]["name"] == "allowed" and request["oldObject"] is None
    assert request["dryRun"] is False and request["options"]["kind"] == "CreateOptions"
    # the namespace selector keeps other namespaces out
    kubectl(srv, "create", "namespace", "unchecked")
    assert "created" in kubectl(srv, "create", "-n", "unchecked", "-f", "-", body=configmap("x", deny="yes")).stdout
    kubectl(srv, "delete", "validatingwebhookconfiguration", "deny")


def test_mutating_webhook_adds_a_label(module_server, hook, tls):
    srv = module_server
    kubectl(srv, "apply", "-f", "-", body=configuration(
        "MutatingWebhookConfiguration", "label", f"https://127.0.0.1:{hook.port}/mutate", tls[0],
        objectSelector={"matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}))
    kubectl(srv, "create", "-f", "-", body=configmap("mutated"))
    labels = json.loads(kubectl(srv, "get", "cm", "mutated", "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"mutated": "yes"}
    kubectl(srv, "create", "-f", "-", body=configmap("skipped", skip="1"))
    labels = json.loads(kubectl(srv, "get", "cm", "skipped", "-o", "json").stdout)["metadata"]["labels"]
    assert labels == {"skip": "1"}
    dry = kubectl(srv, "create", "--dry-run=server", "-o", "json", "-f", "-", body=configmap("dry"))
    assert json.loads(dry.stdout)["metadata"]["labels"] == {"mutated": "yes"}
    kubectl(srv, "delete", "mutatingwebhookconfiguration", "label")


def test_failure_policy_with_the_webhook_down(module_server, tls):
    srv = module_server
    down = f"https://127.0.0.1:{unused_port()}/validate"
    kubectl(srv, "apply", "-f", "-", body=configuration("ValidatingWebhookConfiguration", "down-ignore", down, tls[0],
                                                        failurePolicy="Ignore"))
    assert "created" in kubectl(srv, "create", "-f", "-", body=configmap("through")).stdout
    kubectl(srv, "apply", "-f", "-", body=configuration("ValidatingWebhookConfiguration", "down-fail", down, tls[0],
                                                        failurePolicy="Fail"))
    refused = kubectl(srv, "create", "-f", "-", body=configmap("stopped"), check=False)
    assert refused.returncode != 0
    assert 'Internal error occurred: failed calling webhook "down-fail.example.com": failed to call webhook: Post ' \
           f'"{down}?timeout=10s": dial tcp 127.0.0.1:' in refused.stderr
    assert "connect: connection refused" in refused.stderr
    # a webhook configuration never intercepts admission configurations: its own deletion goes through
    catch_all = configuration("ValidatingWebhookConfiguration", "catch-all", down, tls[0], failurePolicy="Fail",
                              rules=[{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"],
                                      "resources": ["*/*"]}])
    kubectl(srv, "apply", "-f", "-", body=catch_all)
    assert "created" in kubectl(srv, "apply", "-f", "-", body=configuration(
        "MutatingWebhookConfiguration", "still-writable", down, tls[0], failurePolicy="Fail")).stdout
    for kind, name in (("mutatingwebhookconfiguration", "still-writable"), ("validatingwebhookconfiguration",
                                                                           "catch-all"),
                       ("validatingwebhookconfiguration", "down-fail"),
                       ("validatingwebhookconfiguration", "down-ignore")):
        assert "deleted" in kubectl(srv, "delete", kind, name).stdout


def test_timeouts_are_bounded_and_enforced(module_server, hook, tls):
    srv = module_server
    too_long = configuration("ValidatingWebhookConfiguration", "slow", f"https://127.0.0.1:{hook.port}/slow", tls[0],
                             timeoutSeconds=31)
    refused = kubectl(srv, "apply", "-f", "-", body=too_long, check=False)
    assert "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds" \
        in refused.stderr
    too_long["webhooks"][0]["timeoutSeconds"] = 1
    kubectl(srv, "apply", "-f", "-", body=too_long)
    slow = kubectl(srv, "create", "-f", "-", body=configmap("slowed"), check=False)
    assert f'failed calling webhook "slow.example.com": failed to call webhook: Post "https://127.0.0.1:{hook.port}' \
           f'/slow?timeout=1s": context deadline exceeded' in slow.stderr
    kubectl(srv, "delete", "validatingwebhookconfiguration", "slow")


def test_configuration_validation_messages(module_server, tls):
    srv = module_server
    bad = configuration("ValidatingWebhookConfiguration", "bad", "http://127.0.0.1:1/x", tls[0])
    bad["webhooks"][0]["name"] = "short.name"
    del bad["webhooks"][0]["sideEffects"]
    result = kubectl(srv, "apply", "-f", "-", body=bad, check=False)
    assert 'webhooks[0].name: Invalid value: "short.name": should be a domain with at least three segments ' \
           'separated by dots' in result.stderr
    assert "webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun" in result.stderr
    assert "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired " \
           "format: https://host[/path]" in result.stderr
    stored = kubectl(srv, "apply", "--dry-run=server", "-o", "json", "-f", "-", body=configuration(
        "ValidatingWebhookConfiguration", "defaults", "https://127.0.0.1:1/x", tls[0]))
    webhook = json.loads(stored.stdout)["webhooks"][0]
    assert (webhook["failurePolicy"], webhook["matchPolicy"], webhook["timeoutSeconds"]) == ("Fail", "Equivalent", 10)
    assert webhook["namespaceSelector"] == {} and webhook["rules"][0]["scope"] == "*"
    rows = kubectl(srv, "get", "validatingwebhookconfigurations").stdout
    assert rows.splitlines()[0].split() == ["NAME", "WEBHOOKS", "AGE"] if rows.strip() else True


def test_webhooks_for_custom_resources_and_deletes(module_server, hook, tls):
    srv = module_server
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "hooked.hooks.example.com"},
           "spec": {"group": "hooks.example.com", "scope": "Namespaced",
                    "names": {"plural": "hooked", "singular": "hook", "kind": "Hooked"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object",
                                                                  "x-kubernetes-preserve-unknown-fields": True}}}}}]}}
    kubectl(srv, "apply", "-f", "-", body=crd)
    wait_for(lambda: kubectl(srv, "get", "hooked", check=False).returncode == 0, timeout=10)
    config = configuration("ValidatingWebhookConfiguration", "cr", f"https://127.0.0.1:{hook.port}/validate", tls[0],
                           rules=[{"operations": ["CREATE", "DELETE"], "apiGroups": ["hooks.example.com"],
                                   "apiVersions": ["v1"], "resources": ["hooked"]}])
    kubectl(srv, "apply", "-f", "-", body=config)
    body = {"apiVersion": "hooks.example.com/v1", "kind": "Hooked", "metadata": {"name": "h", "labels": {"deny": "yes"}},
            "spec": {}}
    refused = kubectl(srv, "create", "-f", "-", body=body, check=False)
    assert 'admission webhook "cr.example.com" denied the request' in refused.stderr
    body["metadata"]["labels"] = {"deny": "no"}
    kubectl(srv, "create", "-f", "-", body=body)
    kubectl(srv, "label", "hooked", "h", "deny=yes", "--overwrite")
    deleted = kubectl(srv, "delete", "hooked", "h", check=False)
    assert 'admission webhook "cr.example.com" denied the request' in deleted.stderr
    path, review = hook.requests[-1]
    assert review["request"]["operation"] == "DELETE" and review["request"]["object"] is None
    assert review["request"]["oldObject"]["metadata"]["name"] == "h"
    assert review["request"]["options"]["kind"] == "DeleteOptions"
    kubectl(srv, "delete", "validatingwebhookconfiguration", "cr")
    kubectl(srv, "delete", "hooked", "h")
