"""CertificateSigningRequest storage rules: validation, the requester, spec immutability, /status, /approval."""
from __future__ import annotations

import base64
import datetime

import pytest

from apiserver import errors
from apiserver.api import API
from apiserver.auth import context
from apiserver.auth.user import UserInfo
from apiserver.kinds.certificates import CSR_INFO, CSRStrategy, csr_row
from apiserver.kinds.csr_rules import condition_summary, signer_name_problems, validate_csr, validation_options
from apiserver.storage.sqlite import SQLiteStorage
from shipmate import pki

CA_CERT, CA_KEY = pki.make_ca()
KEY = pki.new_key_pem()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def csr_body(name="csr-1", common_name="system:node:n1", organizations=("system:nodes",),
             signer="kubernetes.io/kube-apiserver-client-kubelet", usages=("digital signature", "client auth"),
             **spec):
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
            "spec": {"request": b64(pki.make_csr(KEY, common_name, organizations)), "signerName": signer,
                     "usages": list(usages), **spec}}


def messages(problems) -> list[str]:
    return [f"{p.field}: {p.message()}" for p in problems]


@pytest.fixture
async def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    await storage.start()
    api = API(storage)
    await api.start()
    context.set_user(None)
    yield api
    context.set_user(None)
    await storage.close()


@pytest.fixture
def csrs(api):
    return api.registry(CSR_INFO.group, CSR_INFO.plural)


def test_a_valid_request_passes():
    obj = csr_body()
    assert validate_csr(obj, validation_options(obj, None)) == []


def test_request_must_be_a_pem_certificate_request():
    obj = csr_body()
    obj["spec"]["request"] = b64(CA_CERT)
    problems = messages(validate_csr(obj, validation_options(obj, None)))
    assert len(problems) == 1
    assert problems[0].startswith("spec.request: Invalid value: []byte{0x2d, 0x2d")
    assert problems[0].endswith(": PEM block type must be CERTIFICATE REQUEST")


def test_request_with_a_broken_signature_is_refused():
    pem = pki.make_csr(KEY, "x")
    body = b"".join(pem.splitlines()[1:-1])
    der = bytearray(base64.b64decode(body))
    der[-3] ^= 0xFF  # inside the signature
    broken = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(bytes(der)) + \
        b"-----END CERTIFICATE REQUEST-----\n"
    obj = csr_body()
    obj["spec"]["request"] = b64(broken)
    problems = messages(validate_csr(obj, validation_options(obj, None)))
    assert any(p.startswith("spec.request: Invalid value") and ("verification failure" in p or "malformed" in p)
               for p in problems), problems


def test_usages_signer_and_expiration_rules():
    obj = csr_body(usages=("client auth", "flying", "client auth"), signer="example", expirationSeconds=599)
    problems = messages(validate_csr(obj, validation_options(obj, None)))
    assert 'spec.usages[1]: Unsupported value: "flying": supported values: "any", "cert sign", "client auth", ' \
           '"code signing", "content commitment", "crl sign", "data encipherment", "decipher only", ' \
           '"digital signature", "email protection", "encipher only", "ipsec end system", "ipsec tunnel", ' \
           '"ipsec user", "key agreement", "key encipherment", "microsoft sgc", "netscape sgc", "ocsp signing", ' \
           '"s/mime", "server auth", "signing", "timestamping"' in problems
    assert 'spec.usages[2]: Duplicate value: "client auth"' in problems
    assert "spec.signerName: Invalid value: \"example\": must be a fully qualified domain and path of the form " \
           "'example.com/signer-name'" in problems
    assert "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 600 seconds " \
           "(10 minutes)" in problems
    missing = csr_body(usages=(), signer="")
    assert set(messages(validate_csr(missing, validation_options(missing, None)))) == {
        "spec.usages: Required value", "spec.signerName: Required value"}


@pytest.mark.parametrize("name,problem", [
    ("example.com/signer", None),
    ("kubernetes.io/kube-apiserver-client", None),
    ("example.com/a/b", "must be a fully qualified domain and path"),
    ("localhost/signer", "should be a domain with at least two segments separated by dots"),
    ("Example.com/signer", 'validating label "Example"'),
    ("example.com/Signer", 'validating label "Signer"'),
    ("kubernetes.io/legacy-unknown", None),  # well-formed; refused by validate_csr, not here
])
def test_signer_name_shape(name, problem):
    problems = messages(signer_name_problems("spec.signerName", name))
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_legacy_unknown_signer_is_refused():
    obj = csr_body(signer="kubernetes.io/legacy-unknown")
    assert messages(validate_csr(obj, validation_options(obj, None))) == [
        'spec.signerName: Invalid value: "kubernetes.io/legacy-unknown": the legacy signerName is not allowed via '
        'this API version']


def test_conditions_rules():
    obj = csr_body()
    obj["status"] = {"conditions": [{"type": "Approved", "status": "False"}, {"type": "Denied", "status": "True"},
                                    {"type": "Denied", "status": "True"}, {"type": "", "status": ""}]}
    problems = messages(validate_csr(obj, validation_options(obj, None)))
    assert 'status.conditions[0].status: Unsupported value: "False": supported values: "True"' in problems
    assert 'status.conditions[1].type: Invalid value: "Denied": Approved and Denied conditions are mutually ' \
           'exclusive' in problems
    assert 'status.conditions[2].type: Duplicate value: "Denied"' in problems
    assert "status.conditions[3].type: Required value" in problems
    assert "status.conditions[3].status: Required value" in problems


async def test_create_records_the_requester_and_clears_status(csrs):
    context.set_user(UserInfo("system:bootstrap:abcdef", ("system:bootstrappers", "system:authenticated"), "u-1",
                              {"scope": ("a", "b")}))
    body = csr_body()
    body["spec"].update({"username": "someone-else", "groups": ["system:masters"]})
    body["status"] = {"certificate": b64(CA_CERT), "conditions": [{"type": "Approved", "status": "True"}]}
    created = await csrs.create("", body)
    assert created["spec"]["username"] == "system:bootstrap:abcdef"
    assert created["spec"]["groups"] == ["system:bootstrappers", "system:authenticated"]
    assert created["spec"]["uid"] == "u-1"
    assert created["spec"]["extra"] == {"scope": ["a", "b"]}
    assert created["status"] == {}
    assert "generation" not in created["metadata"]


async def test_bad_base64_is_a_400(csrs):
    body = csr_body()
    body["spec"]["request"] = "not base64!"
    with pytest.raises(errors.APIError) as caught:
        await csrs.create("", body)
    assert caught.value.code == 400
    assert "illegal base64 data at input byte 3" in caught.value.message


async def test_invalid_request_is_a_422_naming_the_field(csrs):
    body = csr_body()
    body["spec"]["request"] = b64(b"hello")
    with pytest.raises(errors.APIError) as caught:
        await csrs.create("", body)
    assert caught.value.code == 422
    assert 'CertificateSigningRequest.certificates.k8s.io "csr-1" is invalid: spec.request: Invalid value: ' \
           '[]byte{0x68, 0x65, 0x6c, 0x6c, 0x6f}: PEM block type must be CERTIFICATE REQUEST' == caught.value.message


async def test_spec_is_immutable_and_status_only_through_subresources(api, csrs):
    created = await csrs.create("", csr_body())
    changed = {**created, "spec": {**created["spec"], "usages": ["client auth"]},
               "status": {"certificate": b64(CA_CERT)}, "metadata": {**created["metadata"], "labels": {"a": "b"}}}
    updated, _ = await api.update(csrs, "", "csr-1", changed)
    assert updated["spec"] == created["spec"]
    assert updated["status"] == {}
    assert updated["metadata"]["labels"] == {"a": "b"}


async def test_status_sets_the_certificate_once_and_cannot_approve(api, csrs):
    created = await csrs.create("", csr_body())
    approving = {**created, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    with pytest.raises(errors.APIError) as caught:
        await api.update(csrs, "", "csr-1", approving, "status")
    assert 'status.conditions: Forbidden: updates may not add a condition of type "Approved"' in caught.value.message
    issued, _ = await api.update(csrs, "", "csr-1", {**created, "status": {"certificate": b64(CA_CERT)}}, "status")
    assert issued["status"]["certificate"] == b64(CA_CERT)
    again = {**issued, "status": {"certificate": b64(pki.make_ca()[0])}}
    with pytest.raises(errors.APIError) as caught:
        await api.update(csrs, "", "csr-1", again, "status")
    assert "status.certificate: Forbidden: updates may not modify existing certificate content" in caught.value.message
    other = await csrs.create("", csr_body("csr-2"))
    garbage = {**other, "status": {"certificate": b64(b"junk")}}
    with pytest.raises(errors.APIError) as caught:
        await api.update(csrs, "", "csr-2", garbage, "status")
    assert "status.certificate: Invalid value: \"<certificate data>\": must contain at least one CERTIFICATE PEM " \
           "block" in caught.value.message


async def test_approval_changes_only_conditions_and_conditions_stay(api, csrs):
    created = await csrs.create("", csr_body())
    approval = {**created, "spec": {**created["spec"], "usages": ["client auth"]},
                "status": {"certificate": b64(CA_CERT),
                           "conditions": [{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]}}
    approved, _ = await api.update(csrs, "", "csr-1", approval, "approval")
    assert approved["spec"] == created["spec"]
    assert "certificate" not in approved["status"]
    condition = approved["status"]["conditions"][0]
    assert condition["reason"] == "KubectlApprove" and condition["lastUpdateTime"] and condition["lastTransitionTime"]
    assert condition_summary(approved) == "Approved"
    # no removal, and Approved/Denied are exclusive
    for conditions, problem in (([], 'updates may not remove a condition of type "Approved"'),
                                ([condition, {"type": "Denied", "status": "True"}],
                                 "Approved and Denied conditions are mutually exclusive")):
        with pytest.raises(errors.APIError) as caught:
            await api.update(csrs, "", "csr-1", {**approved, "status": {"conditions": conditions}}, "approval")
        assert problem in caught.value.message
    # /status keeps the stored Approved condition even when the writer changed it
    tampered = {**approved, "status": {"conditions": [{**condition, "reason": "Tampered"}],
                                       "certificate": b64(CA_CERT)}}
    issued, _ = await api.update(csrs, "", "csr-1", tampered, "status")
    assert issued["status"]["conditions"][0]["reason"] == "KubectlApprove"
    assert condition_summary(issued) == "Approved,Issued"


async def test_approval_patch(api, csrs):
    await csrs.create("", csr_body())
    patched = await api.patch(csrs, "", "csr-1", "application/merge-patch+json",
                              {"status": {"conditions": [{"type": "Denied", "status": "True", "reason": "No"}]}},
                              "approval")
    assert condition_summary(patched) == "Denied"


async def test_field_selector_on_signer_name(csrs):
    from shipmate.selectors import parse_field_selector
    await csrs.create("", csr_body("a"))
    await csrs.create("", csr_body("b", signer="kubernetes.io/kube-apiserver-client", common_name="jane",
                                   organizations=(), usages=("client auth",)))
    items, _ = await csrs.list(fields=parse_field_selector("spec.signerName=kubernetes.io/kube-apiserver-client"))
    assert [i["metadata"]["name"] for i in items] == ["b"]


def test_table_row_as_kubectl_prints_it():
    now = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.timezone.utc)
    obj = csr_body(expirationSeconds=86400)
    obj["metadata"]["creationTimestamp"] = "2026-01-01T11:58:00Z"
    obj["spec"]["username"] = "kubernetes-admin"
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}]}
    assert csr_row(obj, now).cells == ["csr-1", "2m", "kubernetes.io/kube-apiserver-client-kubelet",
                                       "kubernetes-admin", "24h", "Approved,Failed"]
    assert [c.name for c in CSRStrategy().table(now).columns] == [
        "Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    pending = csr_body()
    pending["metadata"]["creationTimestamp"] = "2026-01-01T11:58:00Z"
    assert csr_row(pending, now).cells[4:] == ["<none>", "Pending"]


async def test_expiration_seconds_beyond_int32_is_a_400(csrs):
    with pytest.raises(errors.APIError) as caught:
        await csrs.create("", csr_body(expirationSeconds=2**31))
    assert caught.value.code == 400 and "of type int32" in caught.value.message


async def test_no_system_masters_client_certificates(csrs):
    body = csr_body(common_name="eve", organizations=("system:masters",), signer="kubernetes.io/kube-apiserver-client",
                    usages=("client auth",))
    with pytest.raises(errors.APIError) as caught:
        await csrs.create("", body)
    assert caught.value.code == 403
    assert caught.value.message == 'certificatesigningrequests.certificates.k8s.io "csr-1" is forbidden: use of ' \
                                   'kubernetes.io/kube-apiserver-client signer with system:masters group is not allowed'
    await csrs.create("", csr_body(name="other-signer", common_name="eve", organizations=("system:masters",),
                                   signer="example.com/anything", usages=("client auth",)))


async def test_approving_needs_approve_on_the_signer(api, csrs):
    from apiserver.auth.authorizer import Decision, UnionAuthorizer, Verdict
    asked = []

    class Signers:
        async def authorize(self, attributes):
            asked.append((attributes.verb, attributes.resource, attributes.name))
            allowed = attributes.user.name == "approver" and attributes.name == "kubernetes.io/*"
            return Verdict(Decision.ALLOW if allowed else Decision.NO_OPINION)
    api.authorizer = UnionAuthorizer(Signers())
    created = await csrs.create("", csr_body())
    approval = {**created, "status": {"conditions": [{"type": "Approved", "status": "True"}]}}
    context.set_user(UserInfo("jane", ("devs",)))
    with pytest.raises(errors.APIError) as caught:
        await api.update(csrs, "", "csr-1", approval, "approval")
    assert caught.value.code == 403
    assert caught.value.message == 'certificatesigningrequests.certificates.k8s.io "csr-1" is forbidden: user not ' \
                                   'permitted to approve requests with signerName ' \
                                   '"kubernetes.io/kube-apiserver-client-kubelet"'
    assert asked == [("approve", "signers", "kubernetes.io/kube-apiserver-client-kubelet"),
                     ("approve", "signers", "kubernetes.io/*")]
    context.set_user(UserInfo("approver"))
    approved, _ = await api.update(csrs, "", "csr-1", approval, "approval")
    assert condition_summary(approved) == "Approved"
    context.set_user(UserInfo("kubernetes-admin", ("system:masters",)))
    denial = await api.patch(csrs, "", "csr-1", "application/merge-patch+json", {"metadata": {"labels": {"a": "b"}}},
                             "approval")
    assert denial["metadata"]["labels"] == {"a": "b"}
