"""hostPort: the CNI `portMappings` capability (what upstream's portmap plugin does), our own chains.

containerd passes a pod's `hostPort`s to our plugin as `runtimeConfig.portMappings` (the conflist
declares the capability). ADD records them beside the IPAM allocation, one JSON file per sandbox
(`<ipam dir>/<network>/hostports/<container id>`); DEL removes the file. The agent renders the nat
rules of every recorded sandbox (pure: `render`) and applies them in one iptables-restore transaction
(agent/hostports.py), right after each ADD/DEL and periodically, so the files are the state and a
restarted agent puts back exactly what they say.

Rules (nat), as portmap lays them out:

    PREROUTING, OUTPUT -m addrtype --dst-type LOCAL -> SHIPMATE-HOSTPORTS
    SHIPMATE-HOSTPORTS: per mapping, `[-d hostIP] -p proto --dport hostPort`:
        -s 127.0.0.0/8      -j MARK 0x2000     localhost clients: masqueraded (they cannot leave lo)
        -s <pod subnet>     -j MARK 0x2000     pods of this node (incl. hairpin): masqueraded
        -j DNAT --to-destination podIP:containerPort
    POSTROUTING -> SHIPMATE-HOSTPORTS-MASQ: -m mark --mark 0x2000/0x2000 -j MASQUERADE

Other clients keep their address (as with portmap), so NetworkPolicies see them.
"""
from __future__ import annotations

import ipaddress
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass

from netns.iptables import JumpRule

log = logging.getLogger(__name__)

DNAT_CHAIN = "SHIPMATE-HOSTPORTS"
MASQ_CHAIN = "SHIPMATE-HOSTPORTS-MASQ"
MASQ_MARK = "0x2000"          # portmap's default masquerade bit (13)
PROTOCOLS = ("tcp", "udp", "sctp")
STORE_DIR = "hostports"

JUMPS: tuple[JumpRule, ...] = (
    JumpRule("nat", "PREROUTING", ("-m", "comment", "--comment", "shipmate hostPorts", "-m", "addrtype",
                                   "--dst-type", "LOCAL", "-j", DNAT_CHAIN)),
    JumpRule("nat", "OUTPUT", ("-m", "comment", "--comment", "shipmate hostPorts", "-m", "addrtype",
                               "--dst-type", "LOCAL", "-j", DNAT_CHAIN)),
    JumpRule("nat", "POSTROUTING", ("-m", "comment", "--comment", "shipmate hostPorts", "-j", MASQ_CHAIN)),
)


@dataclass(frozen=True, slots=True, order=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""             # "" = every address of the node


@dataclass(frozen=True, slots=True)
class Sandbox:
    """One sandbox's recorded mappings."""
    container_id: str
    ip: str
    subnet: str
    pod: str                      # namespace/name, for comments
    mappings: tuple[PortMapping, ...]


def parse_port_mappings(runtime_config: object) -> tuple[PortMapping, ...]:
    """`runtimeConfig.portMappings` as containerd sends it; entries we cannot program are skipped
    (no host port, IPv6 host IPs, unknown protocols)."""
    if not isinstance(runtime_config, dict):
        return ()
    out = []
    for entry in runtime_config.get("portMappings") or ():
        if not isinstance(entry, dict):
            continue
        # CNI's names; containerd 1.6 (go-cni without JSON tags) sends Go's field names instead.
        entry = {key[:1].lower() + key[1:]: value for key, value in entry.items()}
        host_port, container_port = entry.get("hostPort"), entry.get("containerPort")
        protocol = str(entry.get("protocol") or "tcp").lower()
        host_ip = str(entry.get("hostIP") or "")
        if not (isinstance(host_port, int) and 0 < host_port < 65536 and isinstance(container_port, int)
                and 0 < container_port < 65536) or protocol not in PROTOCOLS:
            continue
        if host_ip in ("0.0.0.0", "::"):
            host_ip = ""
        if host_ip:
            try:
                if not isinstance(ipaddress.ip_address(host_ip), ipaddress.IPv4Address):
                    continue
            except ValueError:
                continue
        out.append(PortMapping(host_port, container_port, protocol, host_ip))
    return tuple(sorted(set(out)))


class HostPortStore:
    """The recorded mappings, one file per sandbox (written atomically; no lock needed: a sandbox's
    file is only written by its own ADD and removed by its DEL)."""

    def __init__(self, state_dir: str, network: str):
        self.directory = os.path.join(state_dir, network, STORE_DIR)

    def record(self, sandbox: Sandbox) -> None:
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        path = os.path.join(self.directory, sandbox.container_id)
        temp = f"{path}.tmp"
        body = {"ip": sandbox.ip, "subnet": sandbox.subnet, "pod": sandbox.pod,
                "portMappings": [{"hostPort": m.host_port, "containerPort": m.container_port,
                                  "protocol": m.protocol, "hostIP": m.host_ip} for m in sandbox.mappings]}
        with open(temp, "w", encoding="utf-8") as handle:
            json.dump(body, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)

    def forget(self, container_id: str) -> bool:
        try:
            os.unlink(os.path.join(self.directory, container_id))
            return True
        except FileNotFoundError:
            return False

    def sandboxes(self) -> list[Sandbox]:
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        out = []
        for name in names:
            if name.endswith(".tmp"):
                continue
            try:
                with open(os.path.join(self.directory, name), encoding="utf-8") as handle:
                    body = json.load(handle)
                out.append(Sandbox(name, str(body["ip"]), str(body.get("subnet") or ""), str(body.get("pod") or ""),
                                   parse_port_mappings(body)))
            except (OSError, ValueError, KeyError, TypeError) as error:
                log.warning("unreadable hostPort record container=%s error=%s", name, error)
        return out


def render(sandboxes: Iterable[Sandbox], missing_jumps: Iterable[JumpRule] = ()) -> str:
    """The nat transaction: both chains rewritten, then the jumps that are missing."""
    mark = f"-j MARK --set-xmark {MASQ_MARK}/{MASQ_MARK}"
    lines = ["*nat", f":{DNAT_CHAIN} - [0:0]", f":{MASQ_CHAIN} - [0:0]"]
    for sandbox in sorted(sandboxes, key=lambda s: (s.pod, s.container_id)):
        for m in sandbox.mappings:
            destination = f" -d {m.host_ip}/32" if m.host_ip else ""
            comment = f'-m comment --comment "{sandbox.pod or sandbox.container_id[:12]} hostPort {m.host_port}"'
            match = f"{comment}{destination} -p {m.protocol} -m {m.protocol} --dport {m.host_port}"
            lines.append(f"-A {DNAT_CHAIN} {match} -s 127.0.0.0/8 {mark}")
            if sandbox.subnet:
                lines.append(f"-A {DNAT_CHAIN} {match} -s {sandbox.subnet} {mark}")
            lines.append(f"-A {DNAT_CHAIN} {match} -j DNAT --to-destination {sandbox.ip}:{m.container_port}")
    lines.append(f"-A {MASQ_CHAIN} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j MASQUERADE")
    for jump in missing_jumps:
        spec = " ".join(f'"{w}"' if " " in w else w for w in jump.spec)
        lines.append(f"-I {jump.chain} 1 {spec}")
    lines += ["COMMIT", ""]
    return "\n".join(lines)
