"""Admission webhooks: rule matching, selectors, the AdmissionReview v1 request, response checks and refusals
(upstream's messages), and the bounds on calls (in flight, response size)."""
import asyncio
import base64
import json

import pytest

from apiserver.admission.webhook_rules import (CallError, Target, Webhook, denial, is_exempt, matching_target,
                                               object_selected, parse_response, review_request, rule_matches)
from apiserver.admission.webhooks import WebhookCaller
from apiserver.auth.user import UserInfo
from apiserver.kinds.admissionregistration import WebhookConfigurationStrategy
from shipmate import pki
from tests.webhook_server import WebhookServer

PODS = Target("", "v1", "pods", "", "Pod", "default", "CREATE")


def rule(**changes):
    return {"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "scope": "*",
            **changes}


@pytest.mark.parametrize("changes,target,expected", [
    ({}, PODS, True),
    ({"operations": ["UPDATE"]}, PODS, False),
    ({"operations": ["*"]}, PODS, True),
    ({"resources": ["pods/status"]}, PODS, False),
    ({"resources": ["pods/*"]}, Target("", "v1", "pods", "status", "Pod", "default", "CREATE"), True),
    ({"resources": ["*/status"]}, Target("", "v1", "pods", "status", "Pod", "default", "CREATE"), True),
    ({"resources": ["*"]}, Target("", "v1", "pods", "status", "Pod", "default", "CREATE"), False),
    ({"scope": "Cluster"}, PODS, False),
    ({"scope": "Namespaced", "resources": ["namespaces"]},
     Target("", "v1", "namespaces", "", "Namespace", "", "CREATE"), False),
    ({"apiGroups": ["apps"]}, PODS, False),
])
def test_rules(changes, target, expected):
    assert rule_matches(rule(**changes), target) is expected


def test_match_policy_equivalent_calls_for_another_version():
    hook = Webhook("c", {"rules": [rule(apiGroups=["x.io"], apiVersions=["v1"], resources=["foos"])]}, False)
    beta = Target("x.io", "v1beta1", "foos", "", "Foo", "ns", "CREATE")
    v1 = Target("x.io", "v1", "foos", "", "Foo", "ns", "CREATE")
    assert matching_target(hook, beta, [v1]) == v1
    hook.spec["matchPolicy"] = "Exact"
    assert matching_target(hook, beta, [v1]) is None


def test_object_selector_and_exemptions():
    hook = Webhook("c", {"objectSelector": {"matchLabels": {"app": "x"}}}, False)
    assert object_selected(hook, {"metadata": {"labels": {"app": "x"}}}, None)
    assert object_selected(hook, {"metadata": {}}, {"metadata": {"labels": {"app": "x"}}})
    assert not object_selected(hook, {"metadata": {}}, None)
    assert is_exempt("admissionregistration.k8s.io", "ValidatingWebhookConfiguration")
    assert not is_exempt("", "Pod")


def test_review_request_is_admission_review_v1():
    user = UserInfo("alice", ("team",), "u-1", {"scopes": ("a",)})
    review = review_request(PODS, PODS, "p", user, {"apiVersion": "v1", "kind": "Pod"}, None, True, "kubectl")
    request = review["request"]
    assert review["apiVersion"] == "admission.k8s.io/v1" and review["kind"] == "AdmissionReview"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["requestResource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["userInfo"] == {"username": "alice", "uid": "u-1", "groups": ["team"], "extra": {"scopes": ["a"]}}
    assert request["dryRun"] is True and request["oldObject"] is None
    assert request["options"] == {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1", "fieldManager": "kubectl"}


def answer(uid="u", **response):
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"uid": uid, **response}}


@pytest.mark.parametrize("review,mutating,message", [
    (answer("other", allowed=True), False, 'expected response.uid="u", got "other"'),
    ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "response": {"uid": "u"}}, False,
     "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, "
     "Kind=AdmissionReview"),
    ({"kind": "AdmissionReview"}, False, "webhook response was absent"),
    (answer(allowed=True, patch="W10="), True, "webhook returned response.patch but not response.patchType"),
    (answer(allowed=True, patch="W10=", patchType="JSONPatch"), False,
     "validating webhook may not return response.patch"),
])
def test_invalid_responses(review, mutating, message):
    with pytest.raises(CallError) as caught:
        parse_response("hook.example.com", "u", review, mutating)
    assert str(caught.value) == f'failed calling webhook "hook.example.com": received invalid webhook response: ' \
                                f'{message}'


def test_patches_warnings_and_refusals():
    patch = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]
    verdict = parse_response("h", "u", answer(allowed=True, patchType="JSONPatch", warnings=["careful"],
                                              patch=base64.b64encode(json.dumps(patch).encode()).decode(),
                                              auditAnnotations={"k": "v"}), True)
    assert verdict.allowed and verdict.patch == patch and verdict.warnings == ["careful"]
    assert verdict.audit_annotations == {"k": "v"}
    refused = denial("h.example.com", {"code": 403, "message": "no"})
    assert (refused.code, refused.message) == (403, 'admission webhook "h.example.com" denied the request: no')
    assert denial("h.example.com", None).message == \
        'admission webhook "h.example.com" denied the request without explanation'
    assert denial("h.example.com", {"code": 200, "reason": "Bad"}).code == 400


def test_configuration_defaults_and_timeout_bound():
    strategy = WebhookConfigurationStrategy()
    obj = {"metadata": {"name": "c"}, "webhooks": [{
        "name": "a.b.c", "clientConfig": {"url": "https://x.example.com"}, "sideEffects": "None",
        "admissionReviewVersions": ["v1"], "timeoutSeconds": 31,
        "rules": [{"operations": ["CREATE", "*"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*"]}]}]}
    strategy.default(obj)
    hook = obj["webhooks"][0]
    assert (hook["failurePolicy"], hook["matchPolicy"], hook["objectSelector"]) == ("Fail", "Equivalent", {})
    messages = [f"{e.field}: {e.message()}" for e in strategy.validate(obj)]
    assert "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds" \
        in messages
    assert 'webhooks[0].rules[0].operations: Invalid value: []string{"CREATE", "*"}: if \'*\' is present, must not ' \
           'specify other operations' in messages


@pytest.fixture(scope="module")
def tls_server():
    ca_cert, ca_key = pki.make_ca("unit-webhook-ca")
    cert, key = pki.issue(ca_cert, ca_key, "127.0.0.1", ip_addresses=["127.0.0.1"], server=True)
    server = WebhookServer(cert, key).start()
    server.httpd.slow_seconds = 2.0
    yield ca_cert, server
    server.stop()


def _hook(ca_cert, server, path, timeout=5):
    return Webhook("c", {"name": "bound.example.com", "timeoutSeconds": timeout, "clientConfig": {
        "url": f"https://127.0.0.1:{server.port}{path}", "caBundle": base64.b64encode(ca_cert).decode()}}, False)


def test_calls_in_flight_are_bounded(tls_server):
    ca_cert, server = tls_server
    caller = WebhookCaller(api=None, max_in_flight=1)
    review = review_request(PODS, PODS, "p", None, {}, None, False)

    async def both():
        return await asyncio.gather(caller.call(_hook(ca_cert, server, "/slow", timeout=1), review),
                                    caller.call(_hook(ca_cert, server, "/slow", timeout=1), review),
                                    return_exceptions=True)
    results = asyncio.run(both())
    messages = [str(r) for r in results if isinstance(r, CallError)]
    assert any("too many webhook calls in flight (1) for 1s" in m for m in messages), results


def test_response_size_is_bounded_and_verified_tls(tls_server):
    ca_cert, server = tls_server
    caller = WebhookCaller(api=None)
    review = review_request(PODS, PODS, "p", None, {}, None, False)
    with pytest.raises(CallError, match="the response is larger than 3145728 bytes"):
        asyncio.run(caller.call(_hook(ca_cert, server, "/big"), review))
    other_ca, _ = pki.make_ca("another-ca")
    with pytest.raises(CallError, match="certificate"):
        asyncio.run(caller.call(_hook(other_ca, server, "/validate"), review))
    answer_ = asyncio.run(caller.call(_hook(ca_cert, server, "/validate"), review))
    assert answer_["response"]["uid"] == review["request"]["uid"] and answer_["response"]["allowed"] is True
