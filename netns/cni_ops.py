"""ADD / DEL / CHECK / VERSION of `shipmate-cni` and `loopback`: the one implementation.

Both the agent's CNIService and the plugin's in-process fallback call `handle()`. Must run in the
node's network namespace (the bridge and host veth ends live there); blocking.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
from typing import Any, Mapping

from netns import netlink_ops
from netns.cni_codes import (
    ERR_CHECK_FAILED, ERR_INTERFACE_SETUP, ERR_INTERNAL, ERR_INVALID_NETWORK_CONFIG, ERR_IPAM_FAILURE,
    ERR_UNKNOWN_CONTAINER,
)
from netns.cni_spec import (
    LOOPBACK_TYPE, PLUGIN_TYPE, CNIError, CNIReply, CNIRequest,
    NetConf, add_result, host_veth_name, loopback_result, mac_for_ipv4, parse_netconf,
    parse_request, prev_result_address, version_result,
)
from netns.hostport import HostPortStore, Sandbox, parse_port_mappings
from netns.ipam import IPAMExhausted, IPAMStore
from netns.rtnl import IPRoute

log = logging.getLogger(__name__)


def handle(env: Mapping[str, str], stdin: bytes | str, *, ipam_dir: str | None = None) -> CNIReply:
    """Runs one CNI invocation. `ipam_dir`, when given, must match the config's `ipamDataDir`
    (the agent passes its state dir, so allocations never split across two directories)."""
    version = _best_effort_version(stdin)
    try:
        request = parse_request(env, stdin)
        result = _dispatch(request, ipam_dir)
    except CNIError as e:
        log.warning("cni failed command=%s container=%s code=%d msg=%s details=%s",
                    env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID"), e.code, e.msg, e.details)
        return CNIReply(1, json.dumps(e.to_json(version)))
    except Exception as e:
        log.exception("cni failed command=%s container=%s", env.get("CNI_COMMAND"), env.get("CNI_CONTAINERID"))
        return CNIReply(1, json.dumps(CNIError(ERR_INTERNAL, f"internal error: {e}").to_json(version)))
    return CNIReply(0, json.dumps(result) if result is not None else "")


def _best_effort_version(stdin: bytes | str) -> str:
    try:
        version = json.loads(stdin or "{}").get("cniVersion")
    except (ValueError, AttributeError):
        return "1.0.0"
    return version if isinstance(version, str) and version else "1.0.0"


def _dispatch(request: CNIRequest, ipam_dir: str | None) -> dict[str, Any] | None:
    if request.command == "VERSION":
        return version_result(request.cni_version)
    if request.plugin_type == LOOPBACK_TYPE:
        return _loopback(request)
    if request.plugin_type != PLUGIN_TYPE:
        raise CNIError(ERR_INVALID_NETWORK_CONFIG,
                       f"plugin type {request.plugin_type!r} is neither {PLUGIN_TYPE} nor {LOOPBACK_TYPE}")
    conf = parse_netconf(request.config)
    if ipam_dir is not None and os.path.normpath(conf.ipam_dir) != os.path.normpath(ipam_dir):
        raise CNIError(ERR_INVALID_NETWORK_CONFIG,
                       f"ipamDataDir {conf.ipam_dir} differs from the agent's IPAM state dir {ipam_dir}")
    ipam = IPAMStore(conf.ipam_dir, conf.name)
    if request.command == "ADD":
        return _add(request, conf, ipam)
    if request.command == "DEL":
        _delete(request, conf, ipam)
        return None
    _check(request, conf, ipam)
    return None


def _require_netns(request: CNIRequest) -> None:
    if not os.path.exists(request.netns):
        raise CNIError(ERR_UNKNOWN_CONTAINER, f"network namespace {request.netns} does not exist")


def _loopback(request: CNIRequest) -> dict[str, Any] | None:
    if request.command != "ADD":
        return None  # lo goes away with the sandbox's netns; nothing to undo or verify
    _require_netns(request)
    try:
        addresses = netlink_ops.run_in_netns(request.netns, netlink_ops.loopback_up)
    except Exception as e:
        raise CNIError(ERR_INTERFACE_SETUP, f"bringing up lo in {request.netns} failed: {e}") from e
    return loopback_result(request.cni_version, request.netns, addresses)


def _add(request: CNIRequest, conf: NetConf, ipam: IPAMStore) -> dict[str, Any]:
    _require_netns(request)
    try:
        ip = ipam.allocate(request.container_id, request.ifname, conf.subnet, conf.gateway)
    except IPAMExhausted as e:
        raise CNIError(ERR_IPAM_FAILURE, str(e)) from None
    address = ipaddress.IPv4Interface(f"{ip}/{conf.subnet.prefixlen}")
    gateway = ipaddress.IPv4Interface(f"{conf.gateway}/{conf.subnet.prefixlen}")
    host_name = host_veth_name(request.container_id, request.ifname)
    pod_mac = mac_for_ipv4(ip)
    try:
        netlink_ops.enable_ip_forward()
        with IPRoute() as ipr:
            bridge_index = netlink_ops.ensure_bridge(ipr, conf.bridge, gateway,
                                                     mac_for_ipv4(conf.gateway), conf.mtu)
            index = netlink_ops.create_veth(ipr, host_name, request.ifname, request.netns,
                                            pod_mac, conf.mtu)
            netlink_ops.attach_to_bridge(ipr, index, bridge_index, conf.hairpin)
            host_mac = netlink_ops.link_mac(ipr, index)
        netlink_ops.run_in_netns(
            request.netns,
            lambda: netlink_ops.configure_pod_interface(request.ifname, address, conf.gateway))
    except Exception as e:
        log.warning("cni add failed, rolling back pod=%s container=%s ip=%s error=%s",
                    request.pod, request.container_id, ip, e)
        _undo(request, host_name, ipam)
        raise CNIError(ERR_INTERFACE_SETUP, f"attaching {request.ifname} to {conf.bridge} failed: {e}") from e
    mappings = parse_port_mappings(request.config.get("runtimeConfig"))
    if mappings:
        # The agent programs them (agent/hostports.py) from this record, right after this ADD.
        HostPortStore(conf.ipam_dir, conf.name).record(
            Sandbox(request.container_id, str(ip), str(conf.subnet), request.pod, mappings))
    log.info("cni added pod=%s container=%s ip=%s veth=%s host_ports=%s", request.pod, request.container_id,
             address, host_name, ",".join(str(m.host_port) for m in mappings) or "-")
    return add_result(request.cni_version, host_ifname=host_name, host_mac=host_mac,
                      pod_ifname=request.ifname, pod_mac=pod_mac, netns=request.netns,
                      address=address, gateway=conf.gateway)


def _undo(request: CNIRequest, host_name: str, ipam: IPAMStore) -> None:
    """Best effort after a failed ADD; the runtime's DEL that follows finishes what this could not."""
    try:
        with IPRoute() as ipr:
            netlink_ops.delete_link(ipr, host_name)
        ipam.release(request.container_id, request.ifname)
    except Exception as e:
        log.warning("cni rollback incomplete pod=%s container=%s error=%s", request.pod, request.container_id, e)


def _delete(request: CNIRequest, conf: NetConf, ipam: IPAMStore) -> None:
    """Idempotent: unknown containers and already-removed links are success, per the spec."""
    host_name = host_veth_name(request.container_id, request.ifname)
    try:
        with IPRoute() as ipr:
            deleted = netlink_ops.delete_link(ipr, host_name)
    except Exception as e:
        # Keep the address reserved: releasing it while the old interface lives would duplicate it.
        raise CNIError(ERR_INTERFACE_SETUP, f"deleting {host_name} failed: {e}") from e
    HostPortStore(conf.ipam_dir, conf.name).forget(request.container_id)
    released = ipam.release(request.container_id, request.ifname)
    log.info("cni deleted pod=%s container=%s veth_removed=%s released=%s", request.pod,
             request.container_id, deleted, ",".join(map(str, released)) or "-")


def _check(request: CNIRequest, conf: NetConf, ipam: IPAMStore) -> None:
    _require_netns(request)
    address = prev_result_address(conf.prev_result, request.ifname, request.netns)
    problems: list[str] = []
    allocated = ipam.lookup(request.container_id, request.ifname)
    if allocated != address.ip:
        problems.append(f"IPAM holds {allocated or 'no address'} for this container, not {address.ip}")
    host_name = host_veth_name(request.container_id, request.ifname)
    with IPRoute() as ipr:
        problems += netlink_ops.host_side_problems(ipr, host_name, conf.bridge, conf.hairpin)
    problems += netlink_ops.run_in_netns(
        request.netns, lambda: netlink_ops.pod_side_problems(request.ifname, address, conf.gateway))
    if problems:
        raise CNIError(ERR_CHECK_FAILED, "; ".join(problems))
