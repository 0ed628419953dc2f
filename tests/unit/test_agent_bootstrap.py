"""agent/bootstrap.py and agent/cert_rotation.py: the credential decisions, the join against a fake
HTTPS API (CSR create → signed certificate, files and modes), refusals, and renewal timing + rotation
picked up by the running client."""
from __future__ import annotations

import base64
import datetime
import os
import ssl
import stat
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography import x509

from agent.bootstrap import (BootstrapError, CertState, CredentialPaths, Plan, ca_matching_hash, cert_state,
                             csr_object, issued_certificate, load_credentials, plan)
from agent.cert_rotation import SERVING, CertificateRotator, renewal_time
from agent.config import parse_args
from agent.node_server.tls import server_context
from shipmate import pki
from shipmate.kubeclient import NODES, KubeClient
from tests.unit.https_fake import ClusterCA, HttpsServer, peer_common_name, serving

TOKEN = "abcdef.0123456789abcdef"
EXPIRED = "zzzzzz.0123456789abcdef"
NOW = datetime.datetime(2026, 11, 26, 5, 0, tzinfo=datetime.timezone.utc)


def status(code: int, reason: str, message: str) -> web.Response:
    return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                              "reason": reason, "message": message}, status=code)


# ---------------------------------------------------------------- decisions

@pytest.fixture
def ca(tmp_path) -> ClusterCA:
    return ClusterCA.create(tmp_path / "ca")


def test_plan_prefers_kubeconfig_then_an_earlier_join_then_the_token(tmp_path) -> None:
    paths = CredentialPaths(str(tmp_path))
    assert plan("/k", CertState.MISSING, None, paths) is Plan.USE_KUBECONFIG
    assert plan(None, CertState.VALID, TOKEN, paths) is Plan.USE_EXISTING
    for state in (CertState.MISSING, CertState.EXPIRED, CertState.UNTRUSTED):
        assert plan(None, state, TOKEN, paths) is Plan.JOIN
    with pytest.raises(BootstrapError, match="no credentials.*--token"):
        plan(None, CertState.MISSING, None, paths)
    with pytest.raises(BootstrapError, match="kubelet-client-current.pem is expired; join again with --token"):
        plan(None, CertState.EXPIRED, None, paths)


def test_cert_state(ca: ClusterCA, tmp_path) -> None:
    cert, _ = pki.issue(ca.cert, ca.key, "system:node:n1", client=True, seconds=3600)
    other = ClusterCA.create(tmp_path / "other")
    now = datetime.datetime.now(datetime.timezone.utc)
    assert cert_state(None, None, now) is CertState.MISSING
    assert cert_state(b"garbage", None, now) is CertState.MISSING
    assert cert_state(cert, None, now) is CertState.VALID
    assert cert_state(cert, [ca.cert], now) is CertState.VALID
    assert cert_state(cert, [other.cert], now) is CertState.UNTRUSTED
    assert cert_state(cert, [], now) is CertState.UNTRUSTED
    assert cert_state(cert, [ca.cert], now + datetime.timedelta(hours=2)) is CertState.EXPIRED


def test_issued_certificate_and_refusals() -> None:
    assert issued_certificate({"metadata": {"name": "x"}, "status": {}}) is None
    assert issued_certificate({"status": {"certificate": base64.b64encode(b"PEM").decode()}}) == b"PEM"
    denied = {"metadata": {"name": "node-csr-1"}, "status": {"conditions": [
        {"type": "Denied", "status": "True", "reason": "NotAllowed", "message": "no node n2 here"}]}}
    with pytest.raises(BootstrapError, match='"node-csr-1" was denied: NotAllowed: no node n2 here'):
        issued_certificate(denied)


def test_csr_object_as_upstream() -> None:
    body = csr_object("node-csr-abc", b"PEM")
    assert body["spec"] == {"request": base64.b64encode(b"PEM").decode(),
                            "signerName": "kubernetes.io/kube-apiserver-client-kubelet",
                            "usages": ["digital signature", "client auth"]}


def test_ca_hash_pins_one_certificate_of_a_bundle(ca: ClusterCA, tmp_path) -> None:
    other = ClusterCA.create(tmp_path / "other")
    bundle = other.cert + ca.cert
    assert ca_matching_hash(bundle, pki.ca_cert_hash(ca.cert)) == ca.cert
    with pytest.raises(BootstrapError, match="does not match --ca-cert-hash"):
        ca_matching_hash(other.cert, pki.ca_cert_hash(ca.cert))


def test_renewal_time_is_between_70_and_84_percent_as_kubelet() -> None:
    start = NOW
    end = start + datetime.timedelta(seconds=1000)
    assert renewal_time(start, end, 0.0) == start + datetime.timedelta(seconds=700)
    assert renewal_time(start, end, 0.5) == start + datetime.timedelta(seconds=770)
    assert renewal_time(start, end, 0.999) < start + datetime.timedelta(seconds=840)


def test_join_flags() -> None:
    config = parse_args(["--node-ip", "10.0.0.1", "--server", "https://a:6443,https://b:6443", "--token", TOKEN,
                         "--ca-cert-hash", "sha256:" + "ab" * 32])
    assert (config.server, config.token) == ("https://a:6443,https://b:6443", TOKEN)
    for bad in (["--token", "nope"], ["--ca-cert-hash", "md5:1"], ["--server", "a:6443"],
                ["--token", TOKEN, "--kubeconfig", "/k"]):
        with pytest.raises(SystemExit):
            parse_args(["--node-ip", "10.0.0.1", *bad])


# ---------------------------------------------------------------- against a fake API over HTTPS

class FakeCsrApi:
    """/cacerts, CSR create/get (signed after a couple of polls, or denied), and GET /api/v1/nodes/n
    echoing the client certificate's CN. Bearer TOKEN is a bootstrapper; EXPIRED gets upstream's 401."""

    def __init__(self, ca: ClusterCA, lifetime: int = 3600, deny: bool = False) -> None:
        self.ca, self.lifetime, self.deny = ca, lifetime, deny
        self.csrs: dict[str, dict[str, Any]] = {}
        self.creators: list[str] = []
        self.polls = 0
        app = web.Application()
        app.router.add_get("/cacerts", self.cacerts)
        app.router.add_post("/apis/certificates.k8s.io/v1/certificatesigningrequests", self.create)
        app.router.add_get("/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}", self.get)
        app.router.add_get("/api/v1/nodes/n", self.node)
        self.server = HttpsServer(app, ca.server_context())

    def user(self, request: web.Request) -> str | None:
        if request.headers.get("Authorization") == f"Bearer {TOKEN}":
            return "system:bootstrap:abcdef"
        return peer_common_name(request) or None

    async def cacerts(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.ca.cert, content_type="application/x-pem-file")

    async def create(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") == f"Bearer {EXPIRED}":
            return status(401, "Unauthorized", "bootstrap token zzzzzz expired at 2026-11-26T04:00:00Z")
        user = self.user(request)
        if user is None:
            return status(401, "Unauthorized", "Unauthorized")
        body = await request.json()
        self.creators.append(user)
        self.csrs[body["metadata"]["name"]] = body
        return web.json_response(body, status=201)

    async def get(self, request: web.Request) -> web.Response:
        csr = self.csrs.get(request.match_info["name"])
        if csr is None:
            return status(404, "NotFound", "not found")
        self.polls += 1
        if self.polls >= 2:
            if self.deny:
                csr["status"] = {"conditions": [{"type": "Denied", "status": "True", "reason": "Test",
                                                 "message": "denied by the test"}]}
            else:
                request_pem = base64.b64decode(csr["spec"]["request"])
                cert = pki.sign_csr(self.ca.cert, self.ca.key, request_pem, self.lifetime)
                csr["status"] = {"certificate": base64.b64encode(cert).decode()}
        return web.json_response(csr)

    async def node(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") or {}
        return web.json_response({"metadata": {"name": "n", "annotations": {
            "cn": peer_common_name(request), "serial": peer.get("serialNumber", "")}}})


def serial(pem: bytes) -> int:
    return x509.load_pem_x509_certificate(pem).serial_number


def agent_flags(root: str, server: str, *extra: str) -> list[str]:
    return ["--node-name", "n1", "--node-ip", "127.0.0.1", "--root-dir", root, "--server", server, *extra]


async def test_join_writes_credentials_and_a_restart_needs_no_token(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca)
    root = str(tmp_path / "agent")
    async with serving(api.server):
        flags = agent_flags(root, api.server.url, "--token", TOKEN, "--ca-cert-hash", pki.ca_cert_hash(ca.cert))
        credentials = await load_credentials(parse_args(flags), timeout=10)
        paths = CredentialPaths(root)
        pem = open(paths.client_pem, "rb").read()
        assert pki.cert_subject(pem) == ("system:node:n1", ("system:nodes",))
        assert b"PRIVATE KEY" in pem and pki.verify_issued_by(pem, ca.cert)
        assert stat.S_IMODE(os.stat(paths.client_pem).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(paths.kubeconfig).st_mode) == 0o600
        assert open(paths.ca_cert, "rb").read() == ca.cert
        document = yaml.safe_load(open(paths.kubeconfig))
        assert document["users"][0]["user"]["client-certificate"] == os.path.abspath(paths.client_pem)
        assert credentials.rotate and credentials.ca_file == paths.ca_cert
        assert api.creators == ["system:bootstrap:abcdef"]
        [csr] = api.csrs.values()
        assert csr["metadata"]["name"].startswith("node-csr-")
        async with KubeClient(credentials.kubeconfig) as client:
            assert (await client.get(NODES, "n"))["metadata"]["annotations"]["cn"] == "system:node:n1"

        # a restart: no token, and the server is not asked for anything
        again = await load_credentials(parse_args(agent_flags(root, api.server.url)), timeout=10)
        assert again.kubeconfig.client_certificate == os.path.abspath(paths.client_pem)
        assert api.creators == ["system:bootstrap:abcdef"]


async def test_join_with_ca_file_and_two_servers_the_first_down(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca)
    dead = HttpsServer(web.Application(), ca.server_context())
    async with serving(dead):           # started and stopped: its port now refuses connections
        dead_url = dead.url
    async with serving(api.server):
        flags = agent_flags(str(tmp_path / "agent"), f"{dead_url},{api.server.url}", "--token", TOKEN,
                            "--ca-file", ca.cert_path)
        credentials = await load_credentials(parse_args(flags), timeout=10)
        assert credentials.kubeconfig.servers == (dead_url, api.server.url)
        assert api.creators == ["system:bootstrap:abcdef"]


async def test_expired_token_fails_with_the_servers_message(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca)
    async with serving(api.server):
        flags = agent_flags(str(tmp_path / "agent"), api.server.url, "--token", EXPIRED, "--ca-file", ca.cert_path)
        with pytest.raises(BootstrapError, match="401 Unauthorized: bootstrap token zzzzzz expired at"):
            await load_credentials(parse_args(flags), timeout=10)
    assert not os.path.exists(tmp_path / "agent" / "kubelet.kubeconfig")


async def test_denied_csr_and_wrong_ca_hash_fail(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca, deny=True)
    other = ClusterCA.create(tmp_path / "other")
    async with serving(api.server):
        flags = agent_flags(str(tmp_path / "a1"), api.server.url, "--token", TOKEN, "--ca-file", ca.cert_path)
        with pytest.raises(BootstrapError, match="was denied: Test: denied by the test"):
            await load_credentials(parse_args(flags), timeout=10)
        flags = agent_flags(str(tmp_path / "a2"), api.server.url, "--token", TOKEN,
                            "--ca-cert-hash", pki.ca_cert_hash(other.cert))
        with pytest.raises(BootstrapError, match="does not match --ca-cert-hash"):
            await load_credentials(parse_args(flags), timeout=10)


async def test_unsigned_csr_times_out(ca: ClusterCA, tmp_path, monkeypatch) -> None:
    api = FakeCsrApi(ca)
    api.polls = -10**6          # never signed
    async with serving(api.server):
        flags = agent_flags(str(tmp_path / "agent"), api.server.url, "--token", TOKEN, "--ca-file", ca.cert_path)
        with pytest.raises(BootstrapError, match="timed out after 2s waiting for certificate signing request"):
            await load_credentials(parse_args(flags), timeout=2)


async def test_kubeconfig_with_credentials_is_used_as_is_and_its_ca_saved(ca: ClusterCA, tmp_path) -> None:
    pem = ca.client_pem("admin.pem", "kubernetes-admin", ("system:masters",))
    kubeconfig = tmp_path / "admin.kubeconfig"
    kubeconfig.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:1",
                                              "certificate-authority-data": base64.b64encode(ca.cert).decode()}}],
        "users": [{"name": "u", "user": {"client-certificate": pem, "client-key": pem}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    root = str(tmp_path / "agent")
    credentials = await load_credentials(parse_args(["--node-ip", "127.0.0.1", "--root-dir", root,
                                                     "--kubeconfig", str(kubeconfig)]))
    assert not credentials.rotate and credentials.kubeconfig.client_certificate == pem
    assert open(CredentialPaths(root).ca_cert, "rb").read() == ca.cert


async def test_rotation_replaces_the_certificate_and_the_client_uses_it(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca, lifetime=7200)
    root = str(tmp_path / "agent")
    async with serving(api.server):
        flags = agent_flags(root, api.server.url, "--token", TOKEN, "--ca-file", ca.cert_path)
        credentials = await load_credentials(parse_args(flags), timeout=10)
        paths = CredentialPaths(root)
        first = open(paths.client_pem, "rb").read()
        async with KubeClient(credentials.kubeconfig) as client:
            await client.get(NODES, "n")
            rotator = CertificateRotator(client, paths, "n1", csr_timeout=10)
            api.polls = 0
            await rotator.renew()
            second = open(paths.client_pem, "rb").read()
            assert second != first and pki.cert_subject(second)[0] == "system:node:n1"
            assert pki.cert_validity(second)[1] - pki.cert_validity(second)[0] > datetime.timedelta(hours=1)
            # the renewal was asked for with the node's certificate, not a token
            assert api.creators == ["system:bootstrap:abcdef", "system:node:n1"]
            seen = (await client.get(NODES, "n"))["metadata"]["annotations"]
            assert seen["cn"] == "system:node:n1" and int(seen["serial"], 16) == serial(second) != serial(first)
            assert stat.S_IMODE(os.stat(paths.client_pem).st_mode) == 0o600


async def test_serving_certificate_is_asked_for_at_once_with_the_node_addresses(ca: ClusterCA, tmp_path) -> None:
    api = FakeCsrApi(ca, lifetime=7200)
    root = str(tmp_path / "agent")
    rotated = []
    async with serving(api.server):
        flags = agent_flags(root, api.server.url, "--token", TOKEN, "--ca-file", ca.cert_path)
        credentials = await load_credentials(parse_args(flags), timeout=10)
        paths = CredentialPaths(root)
        async with KubeClient(credentials.kubeconfig) as client:
            rotator = CertificateRotator(client, paths, "n1", csr_timeout=10, kind=SERVING,
                                         names=lambda: (["host1"], ["127.0.0.1"]),
                                         on_rotated=lambda: rotated.append(True))
            assert rotator._read_certificate() is None      # none yet: run() asks at once
            await rotator.renew()
    csr = list(api.csrs.values())[-1]
    assert csr["spec"]["signerName"] == "kubernetes.io/kubelet-serving"
    assert csr["spec"]["usages"] == ["digital signature", "server auth"]
    request = x509.load_pem_x509_csr(base64.b64decode(csr["spec"]["request"]))
    names = request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["host1"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert pki.cert_subject(open(paths.serving_pem, "rb").read())[0] == "system:node:n1"
    assert rotated == [True] and stat.S_IMODE(os.stat(paths.serving_pem).st_mode) == 0o600


async def test_rotator_renews_when_due_and_keeps_one_jitter_per_certificate(ca: ClusterCA, tmp_path) -> None:
    rotator = CertificateRotator(None, CredentialPaths(str(tmp_path)), "n1", jitter=iter([0.5, 0.0]).__next__)
    end = NOW + datetime.timedelta(seconds=1000)
    assert rotator._renewal_time(NOW, end) == NOW + datetime.timedelta(seconds=770)
    assert rotator._renewal_time(NOW, end) == NOW + datetime.timedelta(seconds=770)     # same certificate
    later = end + datetime.timedelta(seconds=1000)
    assert rotator._renewal_time(end, later) == end + datetime.timedelta(seconds=700)   # next one: new jitter


# ---------------------------------------------------------------- the node server's TLS

async def test_node_server_tls_requires_a_client_certificate_of_the_cluster_ca(ca: ClusterCA, tmp_path) -> None:
    cert, key = pki.issue(ca.cert, ca.key, "system:node:n1", ("system:nodes",), ip_addresses=["127.0.0.1"],
                          server=True)
    serving_pem = tmp_path / "kubelet-server-current.pem"
    serving_pem.write_bytes(cert + key)

    async def ok(_request: web.Request) -> web.Response:
        return web.Response(text="ok")
    app = web.Application()
    app.router.add_get("/healthz", ok)
    server = HttpsServer(app, server_context(str(serving_pem), ca.cert_path))
    stranger = ClusterCA.create(tmp_path / "stranger")

    async def healthz(pem: str | None) -> str:
        context = ssl.create_default_context()
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        if pem:
            context.load_cert_chain(pem)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{server.url}/healthz", ssl=context) as response:
                return await response.text()

    async with serving(server):
        assert await healthz(ca.client_pem("apiserver.pem", "kube-apiserver-kubelet-client")) == "ok"
        for refused in (None, stranger.client_pem("x.pem", "kube-apiserver-kubelet-client")):
            with pytest.raises(aiohttp.ClientError):
                await healthz(refused)
