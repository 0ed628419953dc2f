"""Backends a Service may not have: Endpoints / EndpointSlices naming a loopback, link-local (the cloud
metadata service 169.254.169.254), link-local multicast or unspecified address are refused (422, upstream's
ValidateEndpointIP), since every node's proxy would send the Service's traffic to itself or to its metadata
service. `spec.externalIPs` is refused (403, upstream's DenyServiceExternalIPs, CVE-2020-8554) unless the
server runs with --allow-service-external-ips; then they are validated the same way. Nothing is stored."""
from __future__ import annotations

import pytest

from tests.integration.test_apiserver_kubectl import Server

pytestmark = pytest.mark.integration

NS = "/api/v1/namespaces/default"
SLICES = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"


def _endpoints(ip: str, not_ready: bool = False) -> dict:
    key = "notReadyAddresses" if not_ready else "addresses"
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "metadata-svc"},
            "subsets": [{key: [{"ip": ip}], "ports": [{"port": 80}]}]}


def _slice(ip: str, address_type: str = "IPv4") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "metadata-svc-1",
            "labels": {"kubernetes.io/service-name": "metadata-svc"}}, "addressType": address_type,
            "endpoints": [{"addresses": [ip]}], "ports": [{"port": 80, "protocol": "TCP"}]}


@pytest.mark.parametrize("ip, why", [("127.0.0.1", "may not be in the loopback range (127.0.0.0/8, ::1/128)"),
                                     ("169.254.169.254",
                                      "may not be in the link-local range (169.254.0.0/16, fe80::/10)"),
                                     ("0.0.0.0", "may not be unspecified (0.0.0.0)")])
def test_special_endpoint_addresses_are_refused(server, ip, why):
    for not_ready in (False, True):
        code, status = server.request("POST", f"{NS}/endpoints", _endpoints(ip, not_ready))
        assert code == 422, status
        field = "notReadyAddresses" if not_ready else "addresses"
        assert status["reason"] == "Invalid"
        assert status["message"] == (f'Endpoints "metadata-svc" is invalid: subsets[0].{field}[0].ip: Invalid value: '
                                     f'"{ip}": {why}')
    code, status = server.request("POST", SLICES, _slice(ip))
    assert code == 422, status
    assert status["message"] == (f'EndpointSlice.discovery.k8s.io "metadata-svc-1" is invalid: '
                                 f'endpoints[0].addresses[0]: Invalid value: "{ip}": {why}')
    assert server.request("GET", f"{NS}/endpoints/metadata-svc")[0] == 404
    assert server.request("GET", f"{SLICES}/metadata-svc-1")[0] == 404


def test_special_addresses_may_not_be_patched_in(server):
    # A Service without a selector: its Endpoints are managed by hand (and kept by the controllers).
    assert server.request("POST", f"{NS}/services", _service("metadata-svc", []))[0] == 201
    assert server.request("POST", f"{NS}/endpoints", _endpoints("10.244.1.5"))[0] == 201
    assert server.request("POST", SLICES, _slice("fd00::5", "IPv6"))[0] == 201
    code, _ = server.request("PATCH", f"{NS}/endpoints/metadata-svc",
                             {"subsets": [{"addresses": [{"ip": "169.254.169.254"}], "ports": [{"port": 80}]}]},
                             content_type="application/merge-patch+json")
    assert code == 422
    code, _ = server.request("PATCH", f"{SLICES}/metadata-svc-1", {"endpoints": [{"addresses": ["fe80::1"]}]},
                             content_type="application/merge-patch+json")
    assert code == 422
    assert server.request("GET", f"{NS}/endpoints/metadata-svc")[1]["subsets"][0]["addresses"] == [{"ip": "10.244.1.5"}]
    assert server.request("GET", f"{SLICES}/metadata-svc-1")[1]["endpoints"][0]["addresses"] == ["fd00::5"]


def _service(name: str, external_ips: list[str]) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], "externalIPs": external_ips}}


def test_external_ips_are_denied_by_default(server):
    code, status = server.request("POST", f"{NS}/services", _service("grab", ["192.0.2.10"]))
    assert code == 403, status
    assert status["reason"] == "Forbidden"
    assert status["message"] == 'services "grab" is forbidden: Use of external IPs is denied by admission control'
    assert server.request("GET", f"{NS}/services/grab")[0] == 404
    # Nor added later.
    assert server.request("POST", f"{NS}/services", _service("plain", []))[0] == 201
    code, status = server.request("PATCH", f"{NS}/services/plain", {"spec": {"externalIPs": ["192.0.2.10"]}},
                                  content_type="application/merge-patch+json")
    assert code == 403, status
    assert not server.request("GET", f"{NS}/services/plain")[1]["spec"].get("externalIPs")


def test_allowed_external_ips_are_validated(tmp_path):
    server = Server(tmp_path)
    server.extra_args = ["--allow-service-external-ips"]
    server.start()
    try:
        code, created = server.request("POST", f"{NS}/services", _service("ext", ["192.0.2.10"]))
        assert code == 201 and created["spec"]["externalIPs"] == ["192.0.2.10"], created
        code, status = server.request("POST", f"{NS}/services", _service("meta", ["169.254.169.254"]))
        assert code == 422, status
        assert status["message"] == ('Service "meta" is invalid: spec.externalIPs[0]: Invalid value: '
                                     '"169.254.169.254": may not be in the link-local range (169.254.0.0/16, '
                                     'fe80::/10)')
        assert server.request("GET", f"{NS}/services/meta")[0] == 404
    finally:
        server.stop()
