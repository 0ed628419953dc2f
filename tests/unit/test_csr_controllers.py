"""The kubelet client auto-approver and the CA signer: their rules, and both running against a real API."""
from __future__ import annotations

import asyncio
import base64
import types

import pytest

from apiserver.api import API
from apiserver.auth import bootstrap_policy, context
from apiserver.auth.authorizer import UnionAuthorizer
from apiserver.auth.rbac_authorizer import RBACAuthorizer
from apiserver.auth.user import UserInfo
from apiserver.certificates.policy import (NODE_CLIENT_MESSAGE, SELF_NODE_CLIENT_MESSAGE, apiserver_client_problem,
                                           kubelet_client_problem, recognize, signing_seconds)
from apiserver.certificates.requests import ParsedRequest
from apiserver.controllers.manager import ControllerContext, start_controllers
from apiserver.informer import SharedInformers
from apiserver.kinds.certificates import CSR_INFO
from apiserver.kinds.csr_rules import condition_summary
from apiserver.storage.sqlite import SQLiteStorage
from shipmate import pki

CA_CERT, CA_KEY = pki.make_ca()
KEY = pki.new_key_pem()
KUBELET = "kubernetes.io/kube-apiserver-client-kubelet"
NODE_REQUEST = ParsedRequest("system:node:n1", ("system:nodes",))
BOOTSTRAPPER = UserInfo("system:bootstrap:abcdef", ("system:bootstrappers", "system:authenticated"))


def csr(common_name="system:node:n1", organizations=("system:nodes",), signer=KUBELET,
        usages=("digital signature", "client auth"), username="system:bootstrap:abcdef",
        groups=("system:bootstrappers",), name="csr-1", **spec):
    return {"metadata": {"name": name},
            "spec": {"request": base64.b64encode(pki.make_csr(KEY, common_name, organizations)).decode(),
                     "signerName": signer, "usages": list(usages), "username": username, "groups": list(groups),
                     **spec}}


@pytest.mark.parametrize("request_,usages,problem", [
    (NODE_REQUEST, {"digital signature", "client auth"}, None),
    (NODE_REQUEST, {"digital signature", "key encipherment", "client auth"}, None),
    (NODE_REQUEST, {"client auth"}, "usages did not match [client auth digital signature key encipherment]"),
    (NODE_REQUEST, {"digital signature", "client auth", "server auth"}, "usages did not match"),
    (ParsedRequest("system:node:n1", ("system:nodes", "x")), {"digital signature", "client auth"},
     "subject organization is not system:nodes"),
    (ParsedRequest("n1", ("system:nodes",)), {"digital signature", "client auth"},
     "subject common name does not begin with system:node:"),
    (ParsedRequest("system:node:n1", ("system:nodes",), dns_names=("n1",)), {"digital signature", "client auth"},
     "DNS subjectAltNames are not allowed"),
    (ParsedRequest("system:node:n1", ("system:nodes",), ip_addresses=("10.0.0.1",)),
     {"digital signature", "client auth"}, "IP subjectAltNames are not allowed"),
])
def test_kubelet_client_rules(request_, usages, problem):
    found = kubelet_client_problem(request_, usages)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_apiserver_client_usages():
    assert apiserver_client_problem(["client auth"]) is None
    assert apiserver_client_problem(["digital signature", "key encipherment", "client auth"]) is None
    assert apiserver_client_problem(["digital signature"]) == \
        "missing required usage for client certificate: client auth"
    assert apiserver_client_problem(["client auth", "server auth"]) == \
        "invalid usage for client certificate: server auth"


def test_recognizers_self_renewal_first_then_node_client():
    new_node = csr()
    assert [r.subresource for r in recognize(new_node, NODE_REQUEST)] == ["nodeclient"]
    renewal = csr(username="system:node:n1", groups=("system:nodes",))
    assert [(r.subresource, r.message) for r in recognize(renewal, NODE_REQUEST)] == [
        ("selfnodeclient", SELF_NODE_CLIENT_MESSAGE), ("nodeclient", NODE_CLIENT_MESSAGE)]
    assert recognize(csr(signer="kubernetes.io/kube-apiserver-client"), NODE_REQUEST) == []
    assert recognize(csr(usages=("client auth",)), NODE_REQUEST) == []


@pytest.mark.parametrize("requested,issued", [(None, 86400), (3600, 3600), (10**9, 86400), (300, 600)])
def test_signing_duration(requested, issued):
    assert signing_seconds(86400, requested) == issued


# the controllers against a real API ---------------------------------------------------------
@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    await bootstrap_policy.reconcile(api)  # the default RBAC policy: nodeclient/selfnodeclient bindings
    rbac = RBACAuthorizer(api)
    api.authorizer = UnionAuthorizer(rbac)
    api.pki = types.SimpleNamespace(ca_cert_pem=CA_CERT, ca_key_pem=CA_KEY)
    informers = SharedInformers()
    tasks = start_controllers(ControllerContext(api, informers, signing_seconds=86400),
                              ["csrapproving", "csrsigning", "tokencleaner"])
    yield api
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await rbac.stop()
    context.set_user(None)
    await storage.close()


async def submit(api: API, user: UserInfo | None, body: dict) -> None:
    context.set_user(user)
    try:
        body = {**body, "spec": {k: v for k, v in body["spec"].items() if k not in ("username", "groups")}}
        await api.create(api.registry(CSR_INFO.group, CSR_INFO.plural), "", body)
    finally:
        context.set_user(None)


async def until(api: API, name: str, predicate, timeout: float = 20.0) -> dict:
    registry = api.registry(CSR_INFO.group, CSR_INFO.plural)
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        obj = await registry.get("", name)
        if predicate(obj):
            return obj
        assert asyncio.get_running_loop().time() < deadline, f"csr {name} stuck: {obj.get('status')}"
        await asyncio.sleep(0.05)


def certificate(obj: dict) -> bytes:
    return base64.b64decode(obj["status"]["certificate"])


async def test_bootstrapper_node_csr_is_approved_and_signed(api):
    await submit(api, BOOTSTRAPPER, csr(expirationSeconds=7200))
    issued = await until(api, "csr-1", lambda o: o.get("status", {}).get("certificate"))
    approved = issued["status"]["conditions"][0]
    assert (approved["type"], approved["status"], approved["reason"], approved["message"]) == (
        "Approved", "True", "AutoApproved", NODE_CLIENT_MESSAGE)
    cert = certificate(issued)
    assert pki.verify_issued_by(cert, CA_CERT)
    assert pki.cert_subject(cert) == ("system:node:n1", ("system:nodes",))
    not_before, not_after = pki.cert_validity(cert)
    assert 7200 <= (not_after - not_before).total_seconds() <= 7200 + 600
    assert condition_summary(issued) == "Approved,Issued"


async def test_node_renewing_its_own_certificate_is_approved(api):
    await submit(api, UserInfo("system:node:n1", ("system:nodes", "system:authenticated")), csr())
    issued = await until(api, "csr-1", lambda o: o.get("status", {}).get("certificate"))
    assert issued["status"]["conditions"][0]["message"] == SELF_NODE_CLIENT_MESSAGE


async def test_requests_outside_the_rules_stay_pending(api):
    await submit(api, UserInfo("system:node:n2", ("system:nodes",)), csr(name="other-node"))  # n2 asks for n1
    await submit(api, BOOTSTRAPPER, csr(name="wrong-org", organizations=("system:masters",)))
    await submit(api, UserInfo("jane", ("devs",)), csr(name="a-user"))
    await asyncio.sleep(0.5)
    registry = api.registry(CSR_INFO.group, CSR_INFO.plural)
    for name in ("other-node", "wrong-org", "a-user"):
        assert condition_summary(await registry.get("", name)) == "Pending", name


async def test_requesters_the_authorizer_allows_are_approved_too(api):
    """Upstream's SubjectAccessReview: system:masters may have any kubelet client CSR auto-approved."""
    await submit(api, UserInfo("kubernetes-admin", ("system:masters",)), csr())
    issued = await until(api, "csr-1", lambda o: o.get("status", {}).get("certificate"))
    assert issued["status"]["conditions"][0]["message"] == NODE_CLIENT_MESSAGE


async def test_without_the_default_bindings_nothing_is_auto_approved(api):
    bindings = api.registry("rbac.authorization.k8s.io", "clusterrolebindings")
    for name in ("nodeclient", "selfnodeclient"):
        await bindings.delete("", f"system:certificates.k8s.io:certificatesigningrequests:{name}")
    await asyncio.sleep(0.2)  # the RBAC index follows the deletions
    await submit(api, BOOTSTRAPPER, csr())
    await submit(api, UserInfo("system:node:n1", ("system:nodes",)), csr(name="renewal"))
    await asyncio.sleep(0.5)
    registry = api.registry(CSR_INFO.group, CSR_INFO.plural)
    for name in ("csr-1", "renewal"):
        assert condition_summary(await registry.get("", name)) == "Pending", name


async def test_admin_approved_client_csr_is_signed_and_bad_usages_fail(api):
    registry = api.registry(CSR_INFO.group, CSR_INFO.plural)
    admin = UserInfo("kubernetes-admin", ("system:masters",))
    await submit(api, admin, csr(name="jane", common_name="jane", organizations=("devs",),
                                 signer="kubernetes.io/kube-apiserver-client", usages=("client auth",)))
    await submit(api, admin, csr(name="server", common_name="jane", organizations=(),
                                 signer="kubernetes.io/kube-apiserver-client", usages=("server auth",)))
    await asyncio.sleep(0.3)
    assert condition_summary(await registry.get("", "jane")) == "Pending"  # nobody auto-approves these
    for name in ("jane", "server"):
        obj = await registry.get("", name)
        obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]}
        await api.update(registry, "", name, obj, "approval")
    issued = await until(api, "jane", lambda o: o.get("status", {}).get("certificate"))
    assert pki.cert_subject(certificate(issued)) == ("jane", ("devs",))
    failed = await until(api, "server", lambda o: "Failed" in condition_summary(o))
    condition = failed["status"]["conditions"][-1]
    assert (condition["reason"], condition["message"]) == ("SignerValidationFailure",
                                                           "invalid usage for client certificate: server auth")
    assert "certificate" not in failed["status"]


SERVING = "kubernetes.io/kubelet-serving"
SERVING_USAGES = ["digital signature", "server auth"]
NODE_N1 = UserInfo("system:node:n1", ("system:nodes", "system:authenticated"))


def serving_csr(name, dns=("host1",), ips=("10.0.0.1",), common_name="system:node:n1"):
    request = pki.make_csr(pki.new_key_pem(), common_name, ("system:nodes",), dns_names=dns, ip_addresses=ips)
    return {"metadata": {"name": name}, "spec": {"request": base64.b64encode(request).decode(), "signerName": SERVING,
                                                 "usages": SERVING_USAGES}}


async def _node_n1(api):
    await api.create(api.nodes, "", {"metadata": {"name": "n1"}, "status": {"addresses": [
        {"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "host1"}]}})


async def test_a_nodes_own_serving_csr_for_its_addresses_is_approved_and_signed(api):
    await _node_n1(api)
    await submit(api, NODE_N1, serving_csr("serving-1"))
    issued = await until(api, "serving-1", lambda o: o.get("status", {}).get("certificate"))
    approved = issued["status"]["conditions"][0]
    assert (approved["type"], approved["reason"]) == ("Approved", "AutoApproved")
    assert approved["message"] == "Auto approving self kubelet serving certificate: its names are the node's addresses."
    cert = certificate(issued)
    assert pki.cert_subject(cert) == ("system:node:n1", ("system:nodes",))
    assert pki.cert_sans(cert) == ({"host1"}, {"10.0.0.1"})
    assert pki.verify_issued_by(cert, CA_CERT)
    from cryptography import x509
    usages = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert [u.dotted_string for u in usages] == ["1.3.6.1.5.5.7.3.1"]  # server auth only


@pytest.mark.parametrize("body,user", [
    (serving_csr("serving-x", ips=("10.0.0.1", "10.0.0.9")), NODE_N1),          # an address the node lacks
    (serving_csr("serving-x", dns=("host1", "kubernetes.default")), NODE_N1),   # a name the node lacks
    (serving_csr("serving-x", common_name="system:node:n2"), NODE_N1),          # another node's name
    (serving_csr("serving-x"), UserInfo("system:node:n2", ("system:nodes",))),  # asked by another node
    (serving_csr("serving-x"), BOOTSTRAPPER),                                    # asked by a bootstrapper
])
async def test_other_serving_csrs_stay_pending(api, body, user):
    await _node_n1(api)
    await submit(api, user, body)
    await asyncio.sleep(0.5)
    obj = await api.registry(CSR_INFO.group, CSR_INFO.plural).get("", "serving-x")
    assert condition_summary(obj) == "Pending"
