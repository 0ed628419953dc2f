"""What the node's proxy programmed for a Service, read the same way in both proxy modes: the nat and filter
tables of `iptables-save` (iptables mode) or the listing of the table `ip shipmate-proxy` (nftables mode).
The mode is the one the running agent uses: in iptables mode the agent deletes the nft table at start."""
from __future__ import annotations

import re
import subprocess
from typing import Any

from agent.proxy import chains, nft

NFT_MODE, IPTABLES_MODE = "nftables", "iptables"


def nft_table() -> str | None:
    listed = subprocess.run(["nft", "list", "table", *nft.FAMILY_TABLE.split()], capture_output=True, text=True)
    return listed.stdout if listed.returncode == 0 else None


def current_mode() -> str:
    return NFT_MODE if nft_table() is not None else IPTABLES_MODE


def iptables_table(table: str) -> str:
    return subprocess.run(["iptables-save", "-t", table], capture_output=True, text=True, check=True).stdout


def chain_rules(table_text: str, chain: str) -> list[str]:
    """iptables-save lines appending to `chain`."""
    return [line for line in table_text.splitlines() if line.startswith(f"-A {chain} ")]


def nft_block(table_text: str, kind: str, name: str) -> str | None:
    """The body of one `map`/`set`/`chain` of an `nft list table` listing."""
    found = re.search(rf"^\t{kind} {re.escape(name)} {{\n(.*?)^\t}}", table_text, re.M | re.S)
    return found.group(1) if found else None


def nft_chain_rules(table_text: str, chain: str) -> list[str] | None:
    body = nft_block(table_text, "chain", chain)
    return None if body is None else [line.strip() for line in body.splitlines() if line.strip()]


def nft_elements(table_text: str, kind: str, name: str) -> list[str]:
    body = nft_block(table_text, kind, name) or ""
    found = re.search(r"elements = {(.*?)}", body, re.S)
    return [e.strip() for e in found.group(1).split(",")] if found else []


def port_name(svc: dict[str, Any]) -> str:
    """Upstream's ServicePortName string of the first port: "ns/name:port", or "ns/name" when unnamed."""
    meta, name = svc["metadata"], svc["spec"]["ports"][0].get("name", "")
    return f"{meta['namespace']}/{meta['name']}" + (f":{name}" if name else "")


def _first_port(svc: dict[str, Any]) -> tuple[str, str, int]:
    spec = svc["spec"]
    return spec["clusterIP"], spec["ports"][0].get("protocol", "TCP").lower(), spec["ports"][0]["port"]


def service_rules(svc: dict[str, Any]) -> list[str] | None:
    """The rules that balance the service's first port over its endpoints, None when its cluster IP leads
    nowhere: the KUBE-SVC chain in iptables mode; in nftables mode the chain `service-ips` sends the
    cluster IP to and, without session affinity, the endpoint map elements of that IP and port."""
    ip, protocol, port = _first_port(svc)
    if current_mode() == IPTABLES_MODE:
        nat = iptables_table("nat")
        chain = chains.cluster_policy_chain(port_name(svc), protocol)
        if not any(f"-d {ip}/32" in r and f"-j {chain}" in r for r in chain_rules(nat, "KUBE-SERVICES")):
            return None
        return chain_rules(nat, chain)
    table = nft_table() or ""
    prefix = f"{ip} . {protocol} . {port} : goto "
    targets = [e[len(prefix):] for e in nft_elements(table, "map", nft.SERVICE_IPS) if e.startswith(prefix)]
    if not targets:
        return None
    rules = nft_chain_rules(table, targets[0]) or []
    by_ip, _ = nft.endpoint_maps(False, protocol)
    picked = [e for e in nft_elements(table, "map", by_ip) if e.startswith(f"{ip} . {port} . ")]
    return rules + sorted(picked)


def endpoint_count(svc: dict[str, Any]) -> int | None:
    """How many endpoints the node balances the service's first port over (None: not programmed)."""
    rules = service_rules(svc)
    if rules is None:
        return None
    if current_mode() == IPTABLES_MODE:
        return len([r for r in rules if "-j KUBE-SEP-" in r and "--rcheck" not in r])
    picks = [int(m.group(1)) for r in rules if (m := re.search(r"goto pick-cluster-\w+-(\d+)$", r))]
    if picks:   # the pick chain draws one of n buckets: the map must hold exactly buckets 0..n-1
        buckets = sorted(int(r.split(" : ")[0].rsplit(" . ", 1)[1]) for r in rules if " : " in r)
        return picks[0] if buckets == list(range(picks[0])) else -1
    return len({m.group(1) for r in rules if (m := re.search(r"dnat to (\S+)$", r))})


def programmed(svc: dict[str, Any], endpoints: int) -> bool:
    return endpoint_count(svc) == endpoints


def uniform_pick(svc: dict[str, Any]) -> list[str]:
    """How the first endpoint is picked among three: iptables' statistic probabilities (the kernel's
    fixed-point 1/3 and 1/2, as iptables-save prints them on any kube-proxy node), or nft's random bucket."""
    rules = service_rules(svc) or []
    if current_mode() == IPTABLES_MODE:
        return re.findall(r"--probability (\S+)", "\n".join(rules))
    return [f"pick {m.group(1)}" for r in rules if (m := re.search(r"goto (pick-cluster-\w+-\d+)$", r))]


def expected_uniform_pick(mode: str) -> list[str]:
    return ["0.33333333349", "0.50000000000"] if mode == IPTABLES_MODE else ["pick pick-cluster-tcp-3"]


def rejects(svc: dict[str, Any]) -> bool:
    """Connections to the cluster IP of a service without endpoints are rejected by a filter rule."""
    ip, protocol, port = _first_port(svc)
    if current_mode() == IPTABLES_MODE:
        return any(f"-d {ip}/32" in r and "-j REJECT" in r for r in chain_rules(iptables_table("filter"),
                                                                              "KUBE-SERVICES"))
    return f"{ip} . {protocol} . {port}" in nft_elements(nft_table() or "", "set", nft.CLUSTER_NO_ENDPOINTS)


def remembers_clients(svc: dict[str, Any], seconds: int = 10800) -> bool:
    """Session affinity: the endpoint picked for a client is remembered for `seconds`."""
    rules = "\n".join(service_rules(svc) or [])
    if current_mode() == IPTABLES_MODE:
        return f"--rcheck --seconds {seconds} --reap" in rules
    sets = re.findall(r"update @(aff-\S+-(\d+)) ", rules)
    return bool(sets) and all(int(timeout) == seconds for _, timeout in sets)


def mentions(ip: str) -> bool:
    """The address appears anywhere in the proxy's rules."""
    if current_mode() == IPTABLES_MODE:
        return ip in iptables_table("nat")
    return re.search(rf"(?<![\d.]){re.escape(ip)}(?![\d])", nft_table() or "") is not None
