"""ServiceAccount admission (apiserver/admission/service_account.py) on a table of pods, TokenRequest through
the API (apiserver/token_request.py), and NodeRestriction on a node's token requests."""
from __future__ import annotations

import asyncio
import copy
import datetime

import pytest

from apiserver import errors
from apiserver.admission.service_account import MOUNT_PATH, token_volume_source
from apiserver.api import API
from apiserver.auth import jwt
from apiserver.auth.context import set_user
from apiserver.auth.service_accounts import TokenIssuer
from apiserver.auth.user import UserInfo
from apiserver.storage.sqlite import SQLiteStorage

NOW = datetime.datetime(2026, 6, 1, 12, 0, tzinfo=datetime.timezone.utc)
MIRROR = {"kubernetes.io/config.mirror": "hash"}


@pytest.fixture
def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(storage.start())
    server = API(storage, clock=lambda: NOW)
    server.service_account.enabled = True
    server.service_account.retry_interval = lambda: 0.0
    server.token_issuer = TokenIssuer(jwt.SigningKey.generate())
    loop.run_until_complete(server.start())
    for name, extra in (("default", {}), ("robot", {"imagePullSecrets": [{"name": "pull"}]}),
                        ("quiet", {"automountServiceAccountToken": False})):
        loop.run_until_complete(server.create(server.registry("", "serviceaccounts"), "default",
                                              {"metadata": {"name": name}, **extra}))
    yield server, loop
    loop.run_until_complete(storage.close())
    loop.close()


def pod(name="p", spec=None, annotations=None, containers=None):
    meta = {"name": name, "namespace": "default"}
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta,
            "spec": {"containers": containers or [{"name": "c", "image": "busybox"}], **(spec or {})}}


def create(api, body):
    server, loop = api
    return loop.run_until_complete(server.create(server.pods, "default", copy.deepcopy(body)))


def token_volumes(created):
    return [v for v in created["spec"].get("volumes") or [] if v["name"].startswith("kube-api-access-")]


def test_default_account_and_token_volume_in_every_container(api):
    created = create(api, pod(spec={"initContainers": [{"name": "init", "image": "busybox"}]},
                              containers=[{"name": "a", "image": "busybox"}, {"name": "b", "image": "busybox"}]))
    spec = created["spec"]
    assert spec["serviceAccountName"] == "default"
    [volume] = token_volumes(created)
    assert len(volume["name"]) == len("kube-api-access-") + 5
    assert volume["projected"] == token_volume_source() == {
        "defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}
    for container in spec["initContainers"] + spec["containers"]:
        assert container["volumeMounts"] == [{"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}]


@pytest.mark.parametrize("case,spec,annotations,mounted", [
    ("pod opts out", {"automountServiceAccountToken": False}, None, False),
    ("account opts out", {"serviceAccountName": "quiet"}, None, False),
    ("pod overrides account", {"serviceAccountName": "quiet", "automountServiceAccountToken": True}, None, True),
    ("mirror pod untouched", {}, MIRROR, False),
])
def test_automount_preferences(api, case, spec, annotations, mounted):
    created = create(api, pod(spec=spec, annotations=annotations))
    assert bool(token_volumes(created)) is mounted, case
    if annotations:
        assert "serviceAccountName" not in created["spec"]


def test_existing_mount_at_the_path_and_existing_volume_are_kept(api):
    containers = [{"name": "own", "image": "busybox", "volumeMounts": [{"name": "mine", "mountPath": MOUNT_PATH}]},
                  {"name": "other", "image": "busybox"}]
    created = create(api, pod(spec={"volumes": [{"name": "mine", "emptyDir": {}}]}, containers=containers))
    mounts = {c["name"]: c["volumeMounts"] for c in created["spec"]["containers"]}
    assert mounts["own"] == [{"name": "mine", "mountPath": MOUNT_PATH}]
    [volume] = token_volumes(created)
    assert mounts["other"] == [{"name": volume["name"], "readOnly": True, "mountPath": MOUNT_PATH}]
    reused = create(api, pod("q", spec={"volumes": [{"name": "kube-api-access-mine", "emptyDir": {}}]}))
    assert [v["name"] for v in reused["spec"]["volumes"]] == ["kube-api-access-mine"]
    assert reused["spec"]["containers"][0]["volumeMounts"][0]["name"] == "kube-api-access-mine"
    every_mounted = create(api, pod("r", containers=[{"name": "c", "image": "busybox", "volumeMounts": [
        {"name": "mine", "mountPath": MOUNT_PATH}]}], spec={"volumes": [{"name": "mine", "emptyDir": {}}]}))
    assert token_volumes(every_mounted) == []


def test_image_pull_secrets_come_from_the_account_unless_the_pod_has_some(api):
    assert create(api, pod(spec={"serviceAccountName": "robot"}))["spec"]["imagePullSecrets"] == [{"name": "pull"}]
    assert create(api, pod("q", spec={"serviceAccountName": "robot", "imagePullSecrets": [{"name": "own"}]})
                  )["spec"]["imagePullSecrets"] == [{"name": "own"}]


def test_missing_account_is_refused_with_upstreams_message(api):
    with pytest.raises(errors.APIError) as refused:
        create(api, pod(spec={"serviceAccountName": "x"}))
    assert refused.value.code == 403
    assert refused.value.message == \
        'pods "p" is forbidden: error looking up service account default/x: serviceaccount "x" not found'


def test_missing_default_account_is_looked_up_again_then_refused(api):
    server, loop = api
    loop.run_until_complete(server.create(server.namespaces, "", {"metadata": {"name": "fresh"}}))
    calls = []
    server.service_account.retry_interval = lambda: calls.append(1) or 0.0
    with pytest.raises(errors.APIError, match='error looking up service account fresh/default: serviceaccount '
                                              '"default" not found'):
        body = pod()
        body["metadata"]["namespace"] = "fresh"
        loop.run_until_complete(server.create(server.pods, "fresh", body))
    assert len(calls) == 9  # ten attempts, as upstream's


@pytest.mark.parametrize("spec,why", [
    ({"serviceAccountName": "default"}, "a mirror pod may not reference service accounts"),
    ({"volumes": [{"name": "s", "secret": {"secretName": "s"}}]}, "a mirror pod may not reference secrets"),
    ({"volumes": [{"name": "t", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}]},
     "a mirror pod may not use ServiceAccountToken volume projections"),
])
def test_mirror_pods_may_not_reference_accounts_secrets_or_tokens(api, spec, why):
    with pytest.raises(errors.APIError) as refused:
        create(api, pod(spec=spec, annotations=MIRROR))
    assert refused.value.message == f'pods "p" is forbidden: {why}'


def test_disabled_plugin_leaves_pods_alone(api):
    server, _ = api
    server.service_account.enabled = False
    created = create(api, pod(spec={"serviceAccountName": "missing"}))
    assert created["spec"]["serviceAccountName"] == "missing" and not token_volumes(created)


# ---------------------------------------------------------------------------------------------- TokenRequest
def request_token(api, name="default", spec=None, user=None):
    server, loop = api

    async def call():
        set_user(user)
        return await server.create_token("default", name, {"apiVersion": "authentication.k8s.io/v1",
                                                           "kind": "TokenRequest", "spec": spec or {}})
    return loop.run_until_complete(call())


def test_token_request_defaults_and_bounds(api):
    answered = request_token(api)
    assert answered["spec"] == {"audiences": ["https://kubernetes.default.svc.cluster.local"], "expirationSeconds": 3600}
    assert answered["status"]["expirationTimestamp"] == "2026-06-01T13:00:00Z"
    claims = jwt.verify(answered["status"]["token"], api[0].token_issuer.public_keys)
    assert claims["exp"] - claims["iat"] == 3600 and "pod" not in claims["kubernetes.io"]
    with pytest.raises(errors.APIError) as short:
        request_token(api, spec={"expirationSeconds": 599})
    assert short.value.code == 422 and "spec.expirationSeconds: Invalid value: 599: may not specify a duration less " \
                                       "than 10 minutes" in short.value.message
    with pytest.raises(errors.APIError) as long:
        request_token(api, spec={"expirationSeconds": (1 << 32) + 1})
    assert "may not specify a duration larger than 2^32 seconds" in long.value.message
    with pytest.raises(errors.APIError) as missing:
        request_token(api, name="nobody")
    assert missing.value.code == 404 and missing.value.message == 'serviceaccounts "nobody" not found'


def test_pod_bound_token_names_pod_and_node_and_checks_uid_and_account(api):
    server, loop = api
    loop.run_until_complete(server.create(server.nodes, "", {"metadata": {"name": "n1"}}))
    created = create(api, pod(spec={"nodeName": "n1"}))
    uid = created["metadata"]["uid"]
    answered = request_token(api, spec={"audiences": ["vault"], "boundObjectRef": {"kind": "Pod", "apiVersion": "v1",
                                                                                   "name": "p", "uid": uid}})
    claims = jwt.verify(answered["status"]["token"], server.token_issuer.public_keys)
    node_uid = loop.run_until_complete(server.nodes.get("", "n1"))["metadata"]["uid"]
    assert claims["aud"] == ["vault"]
    assert claims["kubernetes.io"]["pod"] == {"name": "p", "uid": uid}
    assert claims["kubernetes.io"]["node"] == {"name": "n1", "uid": node_uid}
    with pytest.raises(errors.APIError) as stale:
        request_token(api, spec={"boundObjectRef": {"kind": "Pod", "name": "p", "uid": "old"}})
    assert stale.value.code == 409 and "does not match the UID in record" in stale.value.message
    with pytest.raises(errors.APIError) as other:
        request_token(api, name="robot", spec={"boundObjectRef": {"kind": "Pod", "name": "p"}})
    assert other.value.code == 400 and other.value.message == \
        'cannot bind token for serviceaccount "robot" to pod running with different serviceaccount name.'


# ---------------------------------------------------------------------------------------------- NodeRestriction
NODE_USER = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))


def test_node_may_only_ask_tokens_bound_to_its_own_pods(api):
    server, loop = api
    for node in ("n1", "n2"):
        loop.run_until_complete(server.create(server.nodes, "", {"metadata": {"name": node}}))
    mine = create(api, pod("mine", spec={"nodeName": "n1"}))
    theirs = create(api, pod("theirs", spec={"nodeName": "n2"}))

    def ref(obj, **over):
        return {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": obj["metadata"]["name"],
                                   "uid": obj["metadata"]["uid"], **over}}
    assert request_token(api, spec=ref(mine), user=NODE_USER)["status"]["token"]
    for spec, why in ((ref(theirs), "node requested token bound to a pod scheduled on a different node"),
                      ({}, "node requested token not bound to a pod"),
                      ({"boundObjectRef": {"kind": "Secret", "name": "s"}}, "node requested token not bound to a pod"),
                      (ref(mine, uid=""), "node requested token with a pod binding without a uid"),
                      (ref(mine, uid="old"), "the UID in the bound object reference (old) does not match the UID in "
                                             "record. The object might have been deleted and then recreated")):
        with pytest.raises(errors.APIError) as refused:
            request_token(api, spec=spec, user=NODE_USER)
        assert refused.value.code == 403 and refused.value.message == \
            f'serviceaccounts "default" is forbidden: {why}', spec
