import ipaddress
import json

import pytest

from netns.cni_codes import (
    ERR_DECODING_FAILURE, ERR_INCOMPATIBLE_VERSION, ERR_INVALID_ENVIRONMENT, ERR_INVALID_NETWORK_CONFIG,
)
from netns.cni_spec import (
    CNIError, add_result, host_veth_name, loopback_result,
    mac_for_ipv4, parse_netconf, parse_request, prev_result_address, version_result,
)

CONF = {"cniVersion": "1.0.0", "name": "shipmate", "type": "shipmate-cni", "bridge": "shipmate0",
        "subnet": "10.244.3.0/24", "gateway": "10.244.3.1", "ipamDataDir": "/var/lib/shipmate/ipam"}


def env(**over: str) -> dict[str, str]:
    base = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "0123abcd", "CNI_NETNS": "/var/run/netns/cni-1",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"}
    base.update(over)
    return base


def code_of(env_: dict[str, str], stdin: str = json.dumps(CONF)) -> int:
    with pytest.raises(CNIError) as info:
        parse_request(env_, stdin)
    return info.value.code


def test_parse_request_reads_env_and_config():
    request = parse_request(env(), json.dumps(CONF))
    assert (request.command, request.container_id, request.ifname) == ("ADD", "0123abcd", "eth0")
    assert request.pod == "default/web-0"
    assert request.cni_version == "1.0.0" and request.plugin_type == "shipmate-cni"


@pytest.mark.parametrize("container_id", ["", "-abc", "a;b", "a b", "a/b", "$(reboot)"])
def test_bad_container_ids_are_rejected(container_id):
    assert code_of(env(CNI_CONTAINERID=container_id)) == ERR_INVALID_ENVIRONMENT


@pytest.mark.parametrize("ifname", ["", ".", "..", "a/b", "eth:0", "eth 0", "x" * 16])
def test_bad_ifnames_are_rejected(ifname):
    assert code_of(env(CNI_IFNAME=ifname)) == ERR_INVALID_ENVIRONMENT


@pytest.mark.parametrize("netns", ["", "relative/ns", "/var/run/netns/../../etc/passwd", "/a//b"])
def test_bad_netns_paths_are_rejected(netns):
    assert code_of(env(CNI_NETNS=netns)) == ERR_INVALID_ENVIRONMENT


def test_del_accepts_a_missing_netns():
    assert parse_request(env(CNI_COMMAND="DEL", CNI_NETNS=""), json.dumps(CONF)).netns == ""


def test_unknown_command_and_bad_cni_args():
    assert code_of(env(CNI_COMMAND="GC")) == ERR_INVALID_ENVIRONMENT
    assert code_of(env(CNI_ARGS="novalue")) == ERR_INVALID_ENVIRONMENT


def test_bad_json_and_unsupported_versions():
    assert code_of(env(), "{not json") == ERR_DECODING_FAILURE
    assert code_of(env(), "[]") == ERR_DECODING_FAILURE
    assert code_of(env(), json.dumps({**CONF, "cniVersion": "2.0.0"})) == ERR_INCOMPATIBLE_VERSION
    assert code_of(env(CNI_COMMAND="CHECK"), json.dumps({**CONF, "cniVersion": "0.3.1"})) == ERR_INCOMPATIBLE_VERSION


def test_version_needs_no_container_env():
    request = parse_request({"CNI_COMMAND": "VERSION"}, '{"cniVersion": "1.0.0"}')
    assert request.command == "VERSION"
    assert version_result("1.0.0") == {"cniVersion": "1.0.0",
                                       "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_parse_netconf_defaults_and_values():
    conf = parse_netconf({k: v for k, v in CONF.items() if k != "gateway"})
    assert conf.subnet == ipaddress.IPv4Network("10.244.3.0/24")
    assert conf.gateway == ipaddress.IPv4Address("10.244.3.1")
    assert conf.hairpin is True and conf.mtu is None and conf.bridge == "shipmate0"


@pytest.mark.parametrize("override", [
    {"subnet": "10.244.3.1/24"}, {"subnet": "fd00::/64"}, {"subnet": "10.0.0.0/31"},
    {"gateway": "10.9.9.9"}, {"gateway": "10.244.3.0"}, {"gateway": "10.244.3.255"},
    {"name": ""}, {"name": "../x"}, {"bridge": "bad/name"}, {"ipamDataDir": "relative"},
    {"mtu": 70000}, {"mtu": "1500"}, {"hairpinMode": "yes"}, {"prevResult": []},
])
def test_parse_netconf_rejects_bad_values(override):
    with pytest.raises(CNIError) as info:
        parse_netconf({**CONF, **override})
    assert info.value.code == ERR_INVALID_NETWORK_CONFIG


def test_host_veth_name_is_deterministic_and_short():
    name = host_veth_name("0123abcd", "eth0")
    assert name == host_veth_name("0123abcd", "eth0") and name.startswith("veth") and len(name) == 12
    assert name != host_veth_name("0123abcd", "eth1") != host_veth_name("0123abce", "eth0")


def test_mac_for_ipv4():
    assert mac_for_ipv4(ipaddress.IPv4Address("10.244.3.7")) == "0a:58:0a:f4:03:07"


def test_add_result_shapes_per_version():
    args = dict(host_ifname="veth1", host_mac="aa:bb:cc:dd:ee:ff", pod_ifname="eth0",
                pod_mac="0a:58:0a:f4:03:07", netns="/var/run/netns/x",
                address=ipaddress.IPv4Interface("10.244.3.7/24"), gateway=ipaddress.IPv4Address("10.244.3.1"))
    current = add_result("1.0.0", **args)
    assert current["ips"] == [{"address": "10.244.3.7/24", "interface": 1, "gateway": "10.244.3.1"}]
    assert current["interfaces"][1] == {"name": "eth0", "mac": "0a:58:0a:f4:03:07", "sandbox": "/var/run/netns/x"}
    assert current["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.244.3.1"}]
    assert add_result("0.4.0", **args)["ips"][0]["version"] == "4"


def test_loopback_result_for_containerds_0_3_1_network():
    result = loopback_result("0.3.1", "/var/run/netns/x", ["127.0.0.1/8", "::1/128"])
    assert result["cniVersion"] == "0.3.1"
    assert [ip["version"] for ip in result["ips"]] == ["4", "6"]
    assert result["interfaces"] == [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": "/var/run/netns/x"}]


def test_prev_result_address_picks_the_sandbox_interface():
    prev = add_result("1.0.0", host_ifname="veth1", host_mac="aa:bb:cc:dd:ee:ff", pod_ifname="eth0",
                      pod_mac="0a:58:0a:f4:03:07", netns="/var/run/netns/x",
                      address=ipaddress.IPv4Interface("10.244.3.7/24"),
                      gateway=ipaddress.IPv4Address("10.244.3.1"))
    assert prev_result_address(prev, "eth0", "/var/run/netns/x") == ipaddress.IPv4Interface("10.244.3.7/24")
    with pytest.raises(CNIError):
        prev_result_address(prev, "eth1", "/var/run/netns/x")
    with pytest.raises(CNIError):
        prev_result_address(None, "eth0", "/var/run/netns/x")


def test_error_json_shape():
    body = CNIError(7, "bad", "why").to_json("1.0.0")
    assert body == {"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "why"}
    assert "details" not in CNIError(7, "bad").to_json("1.0.0")
