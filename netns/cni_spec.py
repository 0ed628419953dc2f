"""CNI spec (1.0.0, with 0.3.x/0.4.0 compatibility): requests, network config, results, errors.

Pure and stdlib-only (no netlink): unit-testable, and importable by the plugin's fallback and the
agent alike.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from netns.cni_codes import (
    ERR_DECODING_FAILURE, ERR_INCOMPATIBLE_VERSION, ERR_INVALID_ENVIRONMENT, ERR_INVALID_NETWORK_CONFIG,
)

SUPPORTED_VERSIONS: tuple[str, ...] = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")
PLUGIN_TYPE = "shipmate-cni"
LOOPBACK_TYPE = "loopback"
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION")
DEFAULT_SOCKET_PATH = "/run/shipmate/cni.sock"
DEFAULT_IPAM_DIR = "/var/lib/shipmate/ipam"

# libcni's rule for container ids; interface names follow the kernel's (IFNAMSIZ 16 incl. NUL).
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_IFNAME_FORBIDDEN = re.compile(r"[/:\s]")
_MAX_IFNAME = 15


class CNIError(Exception):
    """A failure reported to the runtime as the spec's error JSON with a non-zero exit."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self, cni_version: str) -> dict[str, Any]:
        body: dict[str, Any] = {"cniVersion": cni_version, "code": self.code, "msg": self.msg}
        if self.details:
            body["details"] = self.details
        return body


@dataclass(frozen=True)
class CNIReply:
    """What the plugin process prints on stdout and exits with."""
    exit_code: int
    stdout: str


@dataclass(frozen=True)
class CNIRequest:
    command: str
    container_id: str
    netns: str
    ifname: str
    args: dict[str, str]
    config: dict[str, Any]

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion") or "1.0.0")

    @property
    def plugin_type(self) -> str:
        return str(self.config.get("type", ""))

    @property
    def pod(self) -> str:
        """namespace/name of the Kubernetes pod, when the runtime passed it in CNI_ARGS."""
        ns, name = self.args.get("K8S_POD_NAMESPACE"), self.args.get("K8S_POD_NAME")
        return f"{ns}/{name}" if ns and name else ""


@dataclass(frozen=True)
class NetConf:
    """The `shipmate-cni` plugin's own keys of the network config."""
    name: str
    cni_version: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    ipam_dir: str
    mtu: int | None = None
    hairpin: bool = True
    prev_result: dict[str, Any] | None = field(default=None, compare=False)


def parse_cni_args(raw: str) -> dict[str, str]:
    """CNI_ARGS is `K=V;K=V`; entries without `=` are invalid."""
    result: dict[str, str] = {}
    for item in filter(None, raw.split(";")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CNIError(ERR_INVALID_ENVIRONMENT, f"invalid CNI_ARGS entry {item!r}")
        result[key] = value
    return result


def validate_container_id(container_id: str) -> None:
    if not container_id or not _CONTAINER_ID.match(container_id):
        raise CNIError(ERR_INVALID_ENVIRONMENT, f"invalid CNI_CONTAINERID {container_id!r}",
                       "must match [a-zA-Z0-9][a-zA-Z0-9_.-]*")


def validate_ifname(ifname: str) -> None:
    if (not ifname or len(ifname) > _MAX_IFNAME or ifname in (".", "..")
            or _IFNAME_FORBIDDEN.search(ifname) or "\0" in ifname):
        raise CNIError(ERR_INVALID_ENVIRONMENT, f"invalid CNI_IFNAME {ifname!r}",
                       "1-15 characters, no '/', ':' or whitespace, not '.' or '..'")


def validate_netns(path: str) -> None:
    if not path.startswith("/") or "\0" in path or os.path.normpath(path) != path:
        raise CNIError(ERR_INVALID_ENVIRONMENT, f"invalid CNI_NETNS {path!r}",
                       "must be an absolute, normalized path")


def decode_config(stdin: bytes | str) -> dict[str, Any]:
    try:
        config = json.loads(stdin or "{}")
    except ValueError as e:
        raise CNIError(ERR_DECODING_FAILURE, "network config is not valid JSON", str(e)) from None
    if not isinstance(config, dict):
        raise CNIError(ERR_DECODING_FAILURE, "network config must be a JSON object")
    return config


def parse_request(env: Mapping[str, str], stdin: bytes | str) -> CNIRequest:
    """Builds a validated request from the CNI_* environment and the config on stdin."""
    command = env.get("CNI_COMMAND", "")
    if command not in COMMANDS:
        raise CNIError(ERR_INVALID_ENVIRONMENT, f"unknown CNI_COMMAND {command!r}")
    config = decode_config(stdin)
    version = str(config.get("cniVersion") or "")
    if command != "VERSION" and version not in SUPPORTED_VERSIONS:
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"incompatible CNI version {version!r}",
                       f"supported: {', '.join(SUPPORTED_VERSIONS)}")
    container_id = env.get("CNI_CONTAINERID", "")
    netns = env.get("CNI_NETNS", "")
    ifname = env.get("CNI_IFNAME", "")
    if command != "VERSION":
        validate_container_id(container_id)
        validate_ifname(ifname)
        # DEL must work after the sandbox's netns is gone, so an empty path is allowed there.
        if netns or command != "DEL":
            validate_netns(netns)
    if command == "CHECK" and version in ("0.3.0", "0.3.1"):
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"CHECK is not defined for CNI version {version}")
    return CNIRequest(command=command, container_id=container_id, netns=netns, ifname=ifname,
                      args=parse_cni_args(env.get("CNI_ARGS", "")), config=config)


def parse_netconf(config: Mapping[str, Any], default_ipam_dir: str = DEFAULT_IPAM_DIR) -> NetConf:
    """Validates the `shipmate-cni` keys; a bad config is error 7 naming the offending key."""
    def bad(msg: str) -> CNIError:
        return CNIError(ERR_INVALID_NETWORK_CONFIG, msg)

    name = config.get("name")
    if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
        raise bad(f"network name {name!r} is missing or invalid")
    bridge = config.get("bridge", "shipmate0")
    try:
        validate_ifname(str(bridge))
    except CNIError:
        raise bad(f"bridge name {bridge!r} is not a valid interface name") from None
    try:
        subnet = ipaddress.IPv4Network(str(config.get("subnet", "")), strict=True)
    except ValueError as e:
        raise bad(f"subnet {config.get('subnet')!r} is not an IPv4 network: {e}") from None
    if subnet.num_addresses < 4:
        raise bad(f"subnet {subnet} is too small for a gateway and pods")
    gateway_raw = config.get("gateway")
    try:
        gateway = (ipaddress.IPv4Address(str(gateway_raw)) if gateway_raw
                   else next(subnet.hosts()))
    except ValueError as e:
        raise bad(f"gateway {gateway_raw!r} is not an IPv4 address: {e}") from None
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise bad(f"gateway {gateway} is not a host address of subnet {subnet}")
    ipam_dir = config.get("ipamDataDir", default_ipam_dir)
    if not isinstance(ipam_dir, str) or not ipam_dir.startswith("/"):
        raise bad(f"ipamDataDir {ipam_dir!r} must be an absolute path")
    mtu = config.get("mtu")
    if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool) or not 576 <= mtu <= 65535):
        raise bad(f"mtu {mtu!r} must be an integer between 576 and 65535")
    hairpin = config.get("hairpinMode", True)
    if not isinstance(hairpin, bool):
        raise bad(f"hairpinMode {hairpin!r} must be a boolean")
    prev = config.get("prevResult")
    if prev is not None and not isinstance(prev, dict):
        raise bad("prevResult must be an object")
    return NetConf(name=name, cni_version=str(config.get("cniVersion")), bridge=str(bridge),
                   subnet=subnet, gateway=gateway, ipam_dir=ipam_dir, mtu=mtu, hairpin=hairpin,
                   prev_result=prev)


def host_veth_name(container_id: str, ifname: str) -> str:
    """Deterministic, so DEL finds the host end from the request alone, without any state."""
    digest = hashlib.sha256(f"{container_id}/{ifname}".encode()).hexdigest()
    return "veth" + digest[:8]


def mac_for_ipv4(address: ipaddress.IPv4Address) -> str:
    """Locally administered unicast MAC 0a:58:<ip>: a reused IP keeps its MAC, so ARP caches stay right."""
    return "0a:58:" + ":".join(f"{b:02x}" for b in address.packed)


def _ip_entry(version: str, address: str, interface: int, gateway: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"address": address, "interface": interface}
    if gateway:
        entry["gateway"] = gateway
    if version != "1.0.0":
        # 0.3.x/0.4.0 results carry the IP family; 1.0.0 dropped the field.
        entry["version"] = "6" if ":" in address else "4"
    return entry


def add_result(version: str, *, host_ifname: str, host_mac: str, pod_ifname: str, pod_mac: str,
               netns: str, address: ipaddress.IPv4Interface,
               gateway: ipaddress.IPv4Address) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": host_ifname, "mac": host_mac},
            {"name": pod_ifname, "mac": pod_mac, "sandbox": netns},
        ],
        "ips": [_ip_entry(version, address.with_prefixlen, 1, str(gateway))],
        "routes": [{"dst": "0.0.0.0/0", "gw": str(gateway)}],
        "dns": {},
    }


def loopback_result(version: str, netns: str, addresses: list[str]) -> dict[str, Any]:
    return {
        "cniVersion": version,
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": netns}],
        "ips": [_ip_entry(version, a, 0, None) for a in addresses],
        "dns": {},
    }


def version_result(config_version: str) -> dict[str, Any]:
    return {"cniVersion": config_version if config_version in SUPPORTED_VERSIONS else "1.0.0",
            "supportedVersions": list(SUPPORTED_VERSIONS)}


def prev_result_address(prev: Mapping[str, Any] | None, ifname: str,
                        netns: str) -> ipaddress.IPv4Interface:
    """The address prevResult assigned to the sandbox interface `ifname` (what CHECK verifies)."""
    if not prev:
        raise CNIError(ERR_INVALID_NETWORK_CONFIG, "CHECK needs prevResult in the network config")
    interfaces = prev.get("interfaces") or []
    for ip in prev.get("ips") or []:
        index = ip.get("interface")
        if isinstance(index, int) and 0 <= index < len(interfaces):
            iface = interfaces[index]
            if iface.get("name") != ifname or iface.get("sandbox", "") != netns:
                continue
        try:
            address = ipaddress.ip_interface(ip.get("address", ""))
        except ValueError:
            continue
        if isinstance(address, ipaddress.IPv4Interface):
            return address
    raise CNIError(ERR_INVALID_NETWORK_CONFIG,
                   f"prevResult has no IPv4 address for interface {ifname} in {netns}")
