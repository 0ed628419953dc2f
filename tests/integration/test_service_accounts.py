"""ServiceAccounts against a real `shipmate server`: the default account and kube-root-ca.crt in every namespace,
`kubectl create serviceaccount|token`, a pod naming a missing account refused, tokens authenticating with the
account's RBAC permissions (403 beyond them, upstream's message), TokenReview, OIDC discovery whose JWKS
verifies the tokens, legacy Secret tokens; and each trust boundary: a token for another audience, of a
deleted pod, forged with another key, expired, and a node asking a token for a pod not on it."""
from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import sqlite3
import ssl
import urllib.error
import urllib.request

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from apiserver.auth import jwt
from apiserver.auth.service_accounts import bound_claims
from apiserver.pki_bootstrap import SERVICE_ACCOUNT_KEY_STORAGE_KEY
from shipmate import pki
from tests.support import wait_for

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")]

BUSYBOX = "127.0.0.1:5000/library/busybox:latest"


def claims_of(token: str) -> dict:
    return json.loads(jwt.b64url_decode(token.split(".")[1]))


def call(server, token: str | None, method: str, path: str, body=None, cert: tuple[str, str] | None = None):
    """(status, JSON body) of a request with only a bearer token (or a client certificate) and the cluster CA."""
    context = ssl.create_default_context(cafile=os.path.join(server.data_dir, "pki", "ca.crt"))
    if cert:
        context.load_cert_chain(*cert)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(server.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def kubectl_as(server, token: str, *args: str, check: bool = False):
    import subprocess
    return subprocess.run(["kubectl", "--server", server.url, "--certificate-authority",
                           os.path.join(server.data_dir, "pki", "ca.crt"), "--token", token, *args],
                          capture_output=True, text=True, timeout=30, check=check)


def pod(name: str, namespace: str, **spec) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"containers": [{"name": "c", "image": BUSYBOX, "command": ["sleep", "3600"]}], **spec}})


@pytest.fixture(scope="module")
def namespaces(module_server):
    for name in ("sa-a", "sa-b"):
        module_server.kubectl("create", "namespace", name)
    wait_for(lambda: module_server.kubectl("get", "sa", "default", "-n", "sa-a", check=False).returncode == 0
             and module_server.kubectl("get", "sa", "default", "-n", "sa-b", check=False).returncode == 0, 15,
             "the default service accounts")
    module_server.kubectl("create", "serviceaccount", "reader", "-n", "sa-a")
    module_server.kubectl("create", "role", "pod-reader", "-n", "sa-a", "--verb=get,list,watch", "--resource=pods")
    module_server.kubectl("create", "rolebinding", "pod-reader", "-n", "sa-a", "--role=pod-reader",
                          "--serviceaccount=sa-a:reader")
    return module_server


def test_default_account_and_root_ca_in_every_namespace(namespaces):
    server = namespaces
    table = server.kubectl("get", "sa", "-n", "sa-a").stdout.splitlines()
    assert table[0].split() == ["NAME", "SECRETS", "AGE"]
    assert [line.split()[:2] for line in table[1:]] == [["default", "0"], ["reader", "0"]]
    with open(os.path.join(server.data_dir, "pki", "ca.crt")) as ca:
        bundle = ca.read()
    wait_for(lambda: server.kubectl("get", "cm", "kube-root-ca.crt", "-n", "sa-b", check=False).returncode == 0, 15,
             "kube-root-ca.crt")
    config_map = json.loads(server.kubectl("get", "cm", "kube-root-ca.crt", "-n", "sa-b", "-o", "json").stdout)
    assert config_map["data"] == {"ca.crt": bundle}
    # Deleted or edited: put back.
    server.kubectl("delete", "sa", "default", "-n", "sa-b")
    server.kubectl("patch", "cm", "kube-root-ca.crt", "-n", "sa-b", "-p", '{"data":{"ca.crt":"tampered"}}')
    wait_for(lambda: server.kubectl("get", "sa", "default", "-n", "sa-b", check=False).returncode == 0, 15,
             "the default account back")
    wait_for(lambda: json.loads(server.kubectl("get", "cm", "kube-root-ca.crt", "-n", "sa-b", "-o", "json").stdout)
             ["data"] == {"ca.crt": bundle}, 15, "kube-root-ca.crt repaired")


def test_pod_gets_default_account_and_token_volume_and_missing_account_is_refused(namespaces):
    server = namespaces
    refused = server.kubectl("create", "-f", "-", input=pod("orphan", "sa-a", serviceAccountName="ghost"), check=False)
    assert refused.returncode != 0
    assert 'pods "orphan" is forbidden: error looking up service account sa-a/ghost: serviceaccount "ghost" not found' \
        in refused.stderr
    server.kubectl("create", "-f", "-", input=pod("plain", "sa-a"))
    created = json.loads(server.kubectl("get", "pod", "plain", "-n", "sa-a", "-o", "json").stdout)
    assert created["spec"]["serviceAccountName"] == "default"
    [volume] = [v for v in created["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert volume["projected"]["defaultMode"] == 420
    assert created["spec"]["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    server.kubectl("delete", "pod", "plain", "-n", "sa-a", "--wait=false")


def test_token_reads_pods_where_bound_and_is_refused_elsewhere(namespaces):
    server = namespaces
    token = server.kubectl("create", "token", "reader", "-n", "sa-a", "--audience",
                           "https://kubernetes.default.svc.cluster.local", "--duration", "15m").stdout.strip()
    claims = claims_of(token)
    assert claims["sub"] == "system:serviceaccount:sa-a:reader"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["kubernetes.io"]["serviceaccount"]["name"] == "reader"
    allowed = kubectl_as(server, token, "get", "pods", "-n", "sa-a")
    assert allowed.returncode == 0, allowed.stderr
    status, body = call(server, token, "GET", "/api/v1/namespaces/sa-b/pods")
    assert status == 403
    assert body["message"] == ('pods is forbidden: User "system:serviceaccount:sa-a:reader" cannot list resource '
                               '"pods" in API group "" in the namespace "sa-b"')
    denied = kubectl_as(server, token, "get", "pods", "-n", "sa-b")
    assert 'User "system:serviceaccount:sa-a:reader" cannot list resource "pods"' in denied.stderr
    whoami = kubectl_as(server, token, "auth", "whoami", "-o", "json", check=True)
    info = json.loads(whoami.stdout)["status"]["userInfo"]
    assert info["username"] == "system:serviceaccount:sa-a:reader"
    assert info["groups"] == ["system:serviceaccounts", "system:serviceaccounts:sa-a", "system:authenticated"]


def test_token_review_and_token_for_another_audience(namespaces):
    server = namespaces
    token = server.kubectl("create", "token", "reader", "-n", "sa-a", "--audience", "vault").stdout.strip()
    assert claims_of(token)["aud"] == ["vault"]
    status, _ = call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")
    assert status == 401                                    # not meant for the API
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}}
    _, answer = server.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
    assert not answer["status"].get("authenticated") and "audiences" in answer["status"]["error"]
    review["spec"]["audiences"] = ["vault"]
    status, answer = server.request("POST", "/apis/authentication.k8s.io/v1/tokenreviews", review)
    assert status == 201 and answer["status"]["authenticated"] is True
    assert answer["status"]["user"]["username"] == "system:serviceaccount:sa-a:reader"
    assert answer["status"]["audiences"] == ["vault"]


def test_oidc_discovery_and_jwks_verify_tokens(namespaces):
    server = namespaces
    token = server.kubectl("create", "token", "reader", "-n", "sa-a").stdout.strip()
    status, config = call(server, token, "GET", "/.well-known/openid-configuration")
    assert status == 200
    assert config["issuer"] == "https://kubernetes.default.svc.cluster.local" == claims_of(token)["iss"]
    assert config["jwks_uri"].endswith("/openid/v1/jwks")
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    status, keys = call(server, token, "GET", "/openid/v1/jwks")
    assert status == 200
    header = json.loads(jwt.b64url_decode(token.split(".")[0]))
    [key] = [k for k in keys["keys"] if k["kid"] == header["kid"]]
    public = rsa.RSAPublicNumbers(int.from_bytes(jwt.b64url_decode(key["e"]), "big"),
                                  int.from_bytes(jwt.b64url_decode(key["n"]), "big")).public_key()
    head, body, signature = token.split(".")
    public.verify(jwt.b64url_decode(signature), f"{head}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())


def test_token_of_a_deleted_pod_stops_working(namespaces):
    server = namespaces
    server.kubectl("create", "-f", "-", input=pod("bound", "sa-a", serviceAccountName="reader"))
    uid = server.kubectl("get", "pod", "bound", "-n", "sa-a", "-o", "jsonpath={.metadata.uid}").stdout
    token = server.kubectl("create", "token", "reader", "-n", "sa-a", "--bound-object-kind", "Pod",
                           "--bound-object-name", "bound").stdout.strip()
    assert claims_of(token)["kubernetes.io"]["pod"] == {"name": "bound", "uid": uid}
    assert call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 200
    server.kubectl("delete", "pod", "bound", "-n", "sa-a", "--grace-period=0", "--force")
    status, body = call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")
    assert status == 401 and body["reason"] == "Unauthorized"
    server.kubectl("create", "-f", "-", input=pod("bound", "sa-a", serviceAccountName="reader"))  # same name, new uid
    assert call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 401


def test_forged_and_expired_tokens_are_refused(namespaces):
    server = namespaces
    account = json.loads(server.kubectl("get", "sa", "reader", "-n", "sa-a", "-o", "json").stdout)
    issuer = "https://kubernetes.default.svc.cluster.local"
    now = datetime.datetime.now(datetime.timezone.utc)
    forged = jwt.sign(bound_claims(now, issuer, [issuer], 3600, account), jwt.SigningKey.generate())
    assert call(server, forged, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 401
    # An expired token of the right key, read from the datastore the way a second server reads it.
    with sqlite3.connect(os.path.join(server.data_dir, "state.db")) as db:
        [(value,)] = db.execute("select value from kv where key = ?", (SERVICE_ACCOUNT_KEY_STORAGE_KEY,)).fetchall()
    key = jwt.SigningKey.from_pem(json.loads(value)["key"].encode())
    fresh = jwt.sign(bound_claims(now, issuer, [issuer], 3600, account), key)
    assert call(server, fresh, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 200
    expired = jwt.sign(bound_claims(now - datetime.timedelta(hours=2), issuer, [issuer], 3600, account), key)
    assert call(server, expired, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 401


def test_legacy_secret_token(namespaces):
    server = namespaces
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "reader-token", "namespace": "sa-a",
                           "annotations": {"kubernetes.io/service-account.name": "reader"}}}
    server.kubectl("create", "-f", "-", input=json.dumps(secret))

    def filled():
        data = json.loads(server.kubectl("get", "secret", "reader-token", "-n", "sa-a", "-o", "json").stdout)
        return data.get("data", {}).get("token")
    wait_for(filled, 15, "the legacy token filled in")
    token = base64.b64decode(filled()).decode()
    assert claims_of(token)["iss"] == "kubernetes/serviceaccount"
    assert call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 200
    server.kubectl("delete", "secret", "reader-token", "-n", "sa-a")
    assert call(server, token, "GET", "/api/v1/namespaces/sa-a/pods")[0] == 401


def test_node_may_request_tokens_only_for_its_own_pods(namespaces, tmp_path):
    server = namespaces
    with open(os.path.join(server.data_dir, "pki", "ca.crt"), "rb") as c, \
            open(os.path.join(server.data_dir, "pki", "ca.key"), "rb") as k:
        ca_cert, ca_key = c.read(), k.read()
    cert, key = pki.issue(ca_cert, ca_key, "system:node:sa-n1", ("system:nodes",), client=True, seconds=3600)
    (tmp_path / "n1.crt").write_bytes(cert)
    (tmp_path / "n1.key").write_bytes(key)
    node_cert = (str(tmp_path / "n1.crt"), str(tmp_path / "n1.key"))
    for node in ("sa-n1", "sa-n2"):
        server.kubectl("create", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                               "metadata": {"name": node}}))
    server.kubectl("create", "serviceaccount", "other", "-n", "sa-b")
    server.kubectl("create", "-f", "-", input=pod("on-n1", "sa-b", nodeName="sa-n1"))
    server.kubectl("create", "-f", "-", input=pod("on-n2", "sa-b", nodeName="sa-n2"))
    server.kubectl("create", "-f", "-", input=pod("other-on-n2", "sa-b", nodeName="sa-n2", serviceAccountName="other"))

    def ask(account: str, pod_name: str):
        uid = server.kubectl("get", "pod", pod_name, "-n", "sa-b", "-o", "jsonpath={.metadata.uid}").stdout
        return call(server, None, "POST", f"/api/v1/namespaces/sa-b/serviceaccounts/{account}/token",
                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                     "spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": pod_name, "uid": uid}}},
                    cert=node_cert)
    status, answer = ask("default", "on-n1")
    assert status == 201, answer
    assert claims_of(answer["status"]["token"])["kubernetes.io"]["node"]["name"] == "sa-n1"
    # The account is used on this node, the pod is not: NodeRestriction.
    status, answer = ask("default", "on-n2")
    assert status == 403 and answer["message"] == ('serviceaccounts "default" is forbidden: node requested token bound '
                                                   'to a pod scheduled on a different node')
    # No pod of this node runs as the account: the node authorizer.
    status, answer = ask("other", "other-on-n2")
    assert status == 403 and answer["message"] == (
        'serviceaccounts "other" is forbidden: User "system:node:sa-n1" cannot create resource "serviceaccounts/token" '
        'in API group "" in the namespace "sa-b": no relationship found between node \'sa-n1\' and this object')


def test_account_settings_apply_to_its_pods(namespaces):
    server = namespaces
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "quiet", "namespace": "sa-a"},
               "automountServiceAccountToken": False, "imagePullSecrets": [{"name": "registry"}]}
    server.kubectl("apply", "-f", "-", input=json.dumps(account))
    server.kubectl("create", "-f", "-", input=pod("quiet-pod", "sa-a", serviceAccountName="quiet"))
    created = json.loads(server.kubectl("get", "pod", "quiet-pod", "-n", "sa-a", "-o", "json").stdout)
    assert not created["spec"].get("volumes") and "volumeMounts" not in created["spec"]["containers"][0]
    assert created["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    server.kubectl("create", "-f", "-", input=pod("loud-pod", "sa-a", serviceAccountName="quiet",
                                                   automountServiceAccountToken=True))
    loud = json.loads(server.kubectl("get", "pod", "loud-pod", "-n", "sa-a", "-o", "json").stdout)
    assert [v["name"][:16] for v in loud["spec"]["volumes"]] == ["kube-api-access-"]
    described = server.kubectl("describe", "sa", "quiet", "-n", "sa-a").stdout
    assert "Image pull secrets:  registry" in described
