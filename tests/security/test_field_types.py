"""Bodies with fields of the wrong JSON type, against a real server: refused with upstream's typed-decoding
400 (`... cannot be handled as a Pod: json: cannot unmarshal ...`) on create, update, patch and apply, nothing
stored or changed, and no crash (a crash would be a 500, which the server logs as a bug)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration

PODS = "/api/v1/namespaces/default/pods"
DEPLOYMENTS = "/apis/apps/v1/namespaces/default/deployments"


def _pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}], **spec}}


@pytest.mark.parametrize("spec, detail", [
    ({"containers": True}, "cannot unmarshal bool into Go struct field PodSpec.spec.containers of type []v1.Container"),
    ({"containers": [{"name": "c", "image": "busybox", "ports": {"containerPort": 80}}]},
     "cannot unmarshal object into Go struct field Container.spec.containers.ports of type []v1.ContainerPort"),
    ({"tolerations": [{"key": "k", "tolerationSeconds": "60"}]},
     "cannot unmarshal string into Go struct field Toleration.spec.tolerations.tolerationSeconds of type int64"),
])
def test_pod_fields_of_the_wrong_type_are_refused(server, spec, detail):
    code, status = server.request("POST", PODS, _pod("typed", **spec))
    assert code == 400, status
    assert status["reason"] == "BadRequest"
    assert status["message"] == f'Pod in version "v1" cannot be handled as a Pod: json: {detail}'
    assert server.request("GET", f"{PODS}/typed")[0] == 404


def test_deployment_selector_of_the_wrong_type_is_refused(server):
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                  "spec": {"selector": {"matchLabels": ["app", "web"]},
                           "template": {"metadata": {"labels": {"app": "web"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    code, status = server.request("POST", DEPLOYMENTS, deployment)
    assert code == 400, status
    assert status["message"] == ('Deployment in version "v1" cannot be handled as a Deployment: json: cannot '
                                 "unmarshal array into Go struct field LabelSelector.spec.selector.matchLabels of "
                                 "type map[string]string")
    assert server.request("GET", f"{DEPLOYMENTS}/web")[0] == 404


def _user_fields(pod: dict) -> tuple:
    """What a client wrote (the scheduler writes status meanwhile)."""
    return pod["spec"], pod["metadata"].get("labels")


@pytest.mark.parametrize("content_type, patch", [
    ("application/merge-patch+json", {"spec": {"containers": 7}}),
    ("application/strategic-merge-patch+json", {"metadata": {"labels": {"a": ["b"]}}}),
    ("application/json-patch+json", [{"op": "replace", "path": "/spec/containers/0/image", "value": {"x": 1}}]),
])
def test_patches_that_break_a_type_are_refused(server, content_type, patch):
    assert server.request("POST", PODS, _pod("p"))[0] == 201
    before = server.request("GET", f"{PODS}/p")[1]
    code, status = server.request("PATCH", f"{PODS}/p", patch, content_type=content_type)
    assert code == 400, status
    assert status["message"].startswith('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal')
    assert _user_fields(server.request("GET", f"{PODS}/p")[1]) == _user_fields(before)


def test_update_that_breaks_a_type_is_refused(server):
    assert server.request("POST", PODS, _pod("p"))[0] == 201
    before = server.request("GET", f"{PODS}/p")[1]
    broken = {**before, "spec": {**before["spec"], "terminationGracePeriodSeconds": "soon"}}
    code, status = server.request("PUT", f"{PODS}/p", broken)
    assert code == 400, status
    assert status["message"] == ('Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string '
                                 "into Go struct field PodSpec.spec.terminationGracePeriodSeconds of type int64")
    assert _user_fields(server.request("GET", f"{PODS}/p")[1]) == _user_fields(before)
