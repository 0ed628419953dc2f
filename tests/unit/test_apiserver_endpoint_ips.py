"""Endpoint and external IPs that would keep traffic on the proxying node (upstream's ValidateEndpointIP),
and DenyServiceExternalIPs (CVE-2020-8554) in the Service strategy."""
from __future__ import annotations

import pytest

from apiserver import errors
from apiserver.kinds.endpoints import EndpointSliceStrategy, EndpointsStrategy
from apiserver.kinds.services import EXTERNAL_IPS_DENIED, ServiceStrategy
from apiserver.validation import endpoint_ip_problems

LOOPBACK = "may not be in the loopback range (127.0.0.0/8, ::1/128)"
LINK_LOCAL = "may not be in the link-local range (169.254.0.0/16, fe80::/10)"
MULTICAST = "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"


@pytest.mark.parametrize("ip, problems", [
    ("127.0.0.1", [LOOPBACK]), ("127.255.0.9", [LOOPBACK]), ("::1", [LOOPBACK]), ("::ffff:127.0.0.1", [LOOPBACK]),
    ("169.254.169.254", [LINK_LOCAL]), ("fe80::1", [LINK_LOCAL]), ("febf::1", [LINK_LOCAL]),
    ("224.0.0.251", [MULTICAST]), ("ff02::fb", [MULTICAST]),
    ("0.0.0.0", ["may not be unspecified (0.0.0.0)"]), ("::", ["may not be unspecified (::)"]),
    ("10.244.1.5", []), ("192.168.1.1", []), ("2001:db8::1", []), ("224.0.1.1", []), ("ff05::1", []),
    ("nonsense", ["must be a valid IP address"]),
])
def test_endpoint_ip_problems(ip, problems):
    assert endpoint_ip_problems(ip) == problems


def _messages(problems) -> list[str]:
    return [f"{p.field}: {p.message()}" for p in problems]


def test_endpoints_refuse_special_addresses_ready_or_not():
    endpoints = {"metadata": {"name": "web", "namespace": "default"}, "subsets": [{
        "addresses": [{"ip": "10.244.1.5"}, {"ip": "169.254.169.254"}],
        "notReadyAddresses": [{"ip": "127.0.0.1"}], "ports": [{"port": 80, "protocol": "TCP"}]}]}
    assert _messages(EndpointsStrategy().validate(endpoints)) == [
        f'subsets[0].addresses[1].ip: Invalid value: "169.254.169.254": {LINK_LOCAL}',
        f'subsets[0].notReadyAddresses[0].ip: Invalid value: "127.0.0.1": {LOOPBACK}']


def test_endpoint_slices_refuse_special_addresses_of_ip_types_only():
    def slice_of(address_type: str, address: str) -> dict:
        return {"metadata": {"name": "web-1", "namespace": "default"}, "addressType": address_type,
                "endpoints": [{"addresses": [address]}], "ports": [{"port": 80, "protocol": "TCP"}]}
    assert _messages(EndpointSliceStrategy().validate(slice_of("IPv4", "127.0.0.1"))) == [
        f'endpoints[0].addresses[0]: Invalid value: "127.0.0.1": {LOOPBACK}']
    assert _messages(EndpointSliceStrategy().validate(slice_of("IPv6", "fe80::1"))) == [
        f'endpoints[0].addresses[0]: Invalid value: "fe80::1": {LINK_LOCAL}']
    assert EndpointSliceStrategy().validate(slice_of("FQDN", "localhost")) == []
    assert EndpointSliceStrategy().validate(slice_of("IPv4", "10.244.1.5")) == []


def _service(external_ips: list[str]) -> dict:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"port": 80}], "externalIPs": external_ips}}


def test_external_ips_are_denied_unless_allowed():
    strategy = ServiceStrategy()
    service = _service(["192.0.2.10"])
    strategy.default(service)
    assert strategy.validate(service) == []
    with pytest.raises(errors.APIError) as refused:
        strategy.admit(service, None)
    assert refused.value.code == 403
    assert refused.value.message == f'services "web" is forbidden: {EXTERNAL_IPS_DENIED}'
    # An update may keep or drop the externalIPs a Service already has, not add one.
    assert strategy.admit(service, service) == []
    with pytest.raises(errors.APIError):
        strategy.admit(_service(["192.0.2.10", "192.0.2.11"]), service)
    allowed = ServiceStrategy(allow_external_ips=True)
    assert allowed.admit(service, None) == []


def test_allowed_external_ips_are_validated_as_endpoints():
    service = _service(["127.0.0.1", "169.254.169.254", "x"])
    ServiceStrategy().default(service)
    assert _messages(ServiceStrategy(allow_external_ips=True).validate(service)) == [
        f'spec.externalIPs[0]: Invalid value: "127.0.0.1": {LOOPBACK}',
        f'spec.externalIPs[1]: Invalid value: "169.254.169.254": {LINK_LOCAL}',
        'spec.externalIPs[2]: Invalid value: "x": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)']
