"""Per-pod rule sets → one iptables-restore transaction for the filter table. Pure.

Layout (our chains only; every sync declares, and so flushes, each of them and rewrites it):

    FORWARD (rule 1) -> SHIPMATE-NP-FORWARD     pod <-> pod and pod <-> off-node traffic
    INPUT   (rule 1) -> SHIPMATE-NP-INPUT       pod -> this node (its addresses, the cluster DNS)

    SHIPMATE-NP-FORWARD / -INPUT:
      -m physdev --physdev-in <veth> ! -s <its pod IP> -j DROP     anti-spoofing, every local pod
      -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN          replies of allowed connections
      -s <pod IP> -j SHIPMATE-NPE-<pod>       egress-isolated pods (FORWARD and INPUT)
      -d <pod IP> -j SHIPMATE-NPI-<pod>       ingress-isolated pods (FORWARD only)
    SHIPMATE-NPI-<pod> / SHIPMATE-NPE-<pod>:
      <peer CIDR> <protocol and port> -j RETURN     one line per allowed (peer, port) pair
      -j DROP                                        isolated: anything else is dropped

RETURN leaves the pod chain back into the top chain, so a packet between two local pods meets the
sender's egress chain and then the receiver's ingress chain; it then goes on through FORWARD (the
proxy's chains and the host's own rules) as before. Traffic the node itself sends to a pod (kubelet
probes, hostPort and NodePort traffic from the node's own addresses) takes OUTPUT and is not
filtered, as with kube-router and Calico. The jumps sit first in FORWARD and INPUT: kube-proxy's
KUBE-FORWARD accepts marked packets, which must not bypass policies.
"""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from agent.netpol.policy import PodRules, PortMatch, Rule
from netns.iptables import JumpRule

PREFIX = "SHIPMATE-NP"
FORWARD_CHAIN = "SHIPMATE-NP-FORWARD"
INPUT_CHAIN = "SHIPMATE-NP-INPUT"
INGRESS_PREFIX = "SHIPMATE-NPI-"
EGRESS_PREFIX = "SHIPMATE-NPE-"
TOP_CHAINS = (FORWARD_CHAIN, INPUT_CHAIN)

JUMPS: tuple[JumpRule, ...] = (
    JumpRule("filter", "FORWARD", ("-m", "comment", "--comment", "shipmate network policies", "-j", FORWARD_CHAIN)),
    JumpRule("filter", "INPUT", ("-m", "comment", "--comment", "shipmate network policies", "-j", INPUT_CHAIN)),
)


def is_our_chain(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass(frozen=True, slots=True)
class Interface:
    """A local pod's host-side veth and the only source address it may send from."""
    name: str
    ip: str
    owner: str = ""          # for the comment


def pod_chain(prefix: str, pod_key: str, ip: str) -> str:
    digest = base64.b32encode(hashlib.sha256(f"{pod_key}/{ip}".encode()).digest()[:10]).decode()
    return prefix + digest[:14]


def _port_match(port: PortMatch) -> str:
    proto = port.protocol.lower()
    if not port.port:
        return f"-p {proto}"
    ports = f"{port.port}:{port.end}" if port.end else str(port.port)
    return f"-p {proto} -m {proto} --dport {ports}"


def _rule_lines(chain: str, rule: Rule, peer_flag: str) -> list[str]:
    comment = f'-m comment --comment "{rule.origin}"'
    peers = [f"{peer_flag} {p}" for p in rule.peers] if rule.peers is not None else [""]
    ports = [_port_match(p) for p in rule.ports] if rule.ports is not None else [""]
    lines = []
    for peer in peers:
        for port in ports:
            match = " ".join(part for part in (peer, port) if part)
            lines.append(f"-A {chain} {comment}{' ' + match if match else ''} -j RETURN")
    return lines


def _pod_chain_lines(chain: str, rules: tuple[Rule, ...], peer_flag: str, what: str) -> list[str]:
    lines = list(dict.fromkeys(line for rule in rules for line in _rule_lines(chain, rule, peer_flag)))
    lines.append(f'-A {chain} -m comment --comment "{what}" -j DROP')
    return lines


@dataclass(frozen=True, slots=True)
class Ruleset:
    text: str                      # one iptables-restore input: one `*filter` transaction
    chains: frozenset[str]         # our chains it leaves in the table


def render(pods: Iterable[PodRules], interfaces: Iterable[Interface] = (), stale_chains: Iterable[str] = (),
           jump_fixes: Iterable[str] = ()) -> Ruleset:
    """The whole state as one transaction. `stale_chains`: ours in the kernel, to delete when not
    written again; `jump_fixes`: lines (e.g. `-D FORWARD …`, `-I FORWARD 1 …`) putting our jumps first."""
    chain_decls = [f":{FORWARD_CHAIN} - [0:0]", f":{INPUT_CHAIN} - [0:0]"]
    top_forward: list[str] = []
    top_input: list[str] = []
    for interface in sorted(interfaces, key=lambda i: i.name):
        owner = f' -m comment --comment "anti-spoofing {interface.owner}"' if interface.owner else ""
        line = f"-m physdev --physdev-in {interface.name} ! -s {interface.ip}/32{owner} -j DROP"
        top_forward.append(f"-A {FORWARD_CHAIN} {line}")
        top_input.append(f"-A {INPUT_CHAIN} {line}")
    established = "-m conntrack --ctstate RELATED,ESTABLISHED -j RETURN"
    top_forward.append(f"-A {FORWARD_CHAIN} {established}")
    top_input.append(f"-A {INPUT_CHAIN} {established}")
    pod_lines: list[str] = []
    written = set(TOP_CHAINS)
    for entry in pods:
        pod = entry.pod
        if entry.egress is not None:
            chain = pod_chain(EGRESS_PREFIX, pod.key, pod.ip)
            written.add(chain)
            chain_decls.append(f":{chain} - [0:0]")
            comment = f'-m comment --comment "egress of {pod.key}"'
            top_forward.append(f"-A {FORWARD_CHAIN} {comment} -s {pod.ip}/32 -j {chain}")
            top_input.append(f"-A {INPUT_CHAIN} {comment} -s {pod.ip}/32 -j {chain}")
            pod_lines += _pod_chain_lines(chain, entry.egress, "-d", f"default deny egress of {pod.key}")
        if entry.ingress is not None:
            chain = pod_chain(INGRESS_PREFIX, pod.key, pod.ip)
            written.add(chain)
            chain_decls.append(f":{chain} - [0:0]")
            comment = f'-m comment --comment "ingress of {pod.key}"'
            top_forward.append(f"-A {FORWARD_CHAIN} {comment} -d {pod.ip}/32 -j {chain}")
            pod_lines += _pod_chain_lines(chain, entry.ingress, "-s", f"default deny ingress of {pod.key}")
    stale = sorted(set(c for c in stale_chains if is_our_chain(c)) - written)
    lines = ["*filter", *chain_decls, *(f":{c} - [0:0]" for c in stale), *top_forward, *top_input, *pod_lines,
             *(f"-X {c}" for c in stale), *jump_fixes, "COMMIT", ""]
    return Ruleset("\n".join(lines), frozenset(written))


def jump_line(jump: JumpRule) -> str:
    """The spec of a jump as iptables-restore/`-S` write it (quoted comment)."""
    return " ".join(f'"{w}"' if " " in w else w for w in jump.spec)


def jump_fixes(listing: dict[str, str]) -> list[str]:
    """Lines that make each of our jumps the first rule of its built-in chain, given `iptables -S
    <chain>` output per chain (empty when the jump is first and present once)."""
    fixes = []
    for jump in JUMPS:
        rules = [line for line in listing.get(jump.chain, "").splitlines() if line.startswith(f"-A {jump.chain} ")]
        ours = [line for line in rules if line.split()[-1] == jump.target and line.split()[-2] == "-j"]
        if len(ours) == 1 and rules and rules[0] == ours[0]:
            continue
        fixes += [f"-D {jump.chain} {line[len(f'-A {jump.chain} '):]}" for line in ours]
        fixes.append(f"-I {jump.chain} 1 {jump_line(jump)}")
    return fixes
