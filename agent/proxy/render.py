"""Services + endpoints → iptables-restore text, in kube-proxy's iptables-mode layout. Pure.

A full ruleset rewrites every chain we own. A partial ruleset (for `--noflush`) rewrites only the
chains of the changed service ports and edits the shared chains (KUBE-SERVICES, KUBE-NODEPORTS and
the filter chains) rule by rule with `-D`/`-I`/`-A`: those shared chains hold one rule per service,
and flushing a 10k-rule chain to change one line costs far more than the change itself.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from agent.proxy import chains
from agent.proxy.model import Endpoint, ServicePort, ServicePortName
from netns.iptables import JumpRule

# Above this many endpoint chains, per-endpoint comments are left out, as upstream does
# ("large cluster mode"): they make up ~40% of the text.
LARGE_CLUSTER_ENDPOINTS = 1000

NODEPORTS_TAIL_COMMENT = '"kubernetes service nodeports; NOTE: this must be the last rule in this chain"'


@dataclass(frozen=True, slots=True)
class RenderConfig:
    cluster_cidr: str
    node_name: str = ""
    masquerade_mark: str = "0x4000"
    random_fully: bool = True
    # Upstream drops conntrack-INVALID forwarded packets unless nf_conntrack_tcp_be_liberal is set.
    drop_invalid: bool = True
    # SNAT every packet sent to a cluster IP (kube-proxy's --masquerade-all). The agent turns it on
    # when the kernel cannot pass bridged traffic through iptables (no br_netfilter): a backend
    # on the client's own bridge would otherwise answer it directly, bypassing the reverse DNAT.
    masquerade_all: bool = False
    # NodePorts answer on 127.0.0.1 too (kube-proxy's --iptables-localhost-nodeports, default on):
    # needs net.ipv4.conf.all.route_localnet=1, and KUBE-FIREWALL then drops packets to 127/8 that
    # arrive from outside the node (kubernetes issue 90259).
    localhost_node_ports: bool = True


def _jump(table: str, chain: str, target: str, comment: str, *extra: str) -> JumpRule:
    return JumpRule(table, chain, (*extra, "-m", "comment", "--comment", comment, "-j", target))


_NEW = ("-m", "conntrack", "--ctstate", "NEW")
# Rules in the built-in chains that send traffic into ours (upstream's iptablesJumpChains).
JUMPS: tuple[JumpRule, ...] = (
    _jump("filter", "INPUT", chains.EXTERNAL_SERVICES, "kubernetes externally-visible service portals", *_NEW),
    _jump("filter", "FORWARD", chains.EXTERNAL_SERVICES, "kubernetes externally-visible service portals", *_NEW),
    _jump("filter", "INPUT", chains.NODEPORTS, "kubernetes health check service ports"),
    _jump("filter", "FORWARD", chains.SERVICES, "kubernetes service portals", *_NEW),
    _jump("filter", "OUTPUT", chains.SERVICES, "kubernetes service portals", *_NEW),
    _jump("filter", "FORWARD", chains.FORWARD, "kubernetes forwarding rules"),
    _jump("nat", "OUTPUT", chains.SERVICES, "kubernetes service portals"),
    _jump("nat", "PREROUTING", chains.SERVICES, "kubernetes service portals"),
    _jump("nat", "POSTROUTING", chains.POSTROUTING, "kubernetes postrouting rules"),
    JumpRule("filter", "INPUT", ("-j", chains.FIREWALL)),
    JumpRule("filter", "OUTPUT", ("-j", chains.FIREWALL)),
)


@dataclass(frozen=True, slots=True)
class ProxyState:
    services: Mapping[ServicePortName, ServicePort]
    endpoints: Mapping[ServicePortName, tuple[Endpoint, ...]]

    def endpoint_chain_count(self) -> int:
        services = self.services
        return sum(len(eps) for name, eps in self.endpoints.items() if name in services)


@dataclass(frozen=True, slots=True)
class Ruleset:
    # iptables-restore inputs, applied in order, each one `--noflush` transaction.
    transactions: tuple[str, ...]
    # Service chains (KUBE-SVC/SVL/EXT/SEP) this text creates or rewrites, and the ones it deletes.
    written: frozenset[str]
    deleted: frozenset[str]


def is_large_cluster(state: ProxyState) -> bool:
    return state.endpoint_chain_count() > LARGE_CLUSTER_ENDPOINTS


@dataclass(slots=True)
class _ServiceRules:
    """One service port's rules: specs for the shared chains, and its own chains in full."""
    nat_services: list[str] = field(default_factory=list)
    nat_nodeports: list[str] = field(default_factory=list)
    filter_services: list[str] = field(default_factory=list)
    filter_external: list[str] = field(default_factory=list)
    own_chains: list[str] = field(default_factory=list)
    own_rules: list[str] = field(default_factory=list)


@lru_cache(maxsize=1 << 17)
def _endpoint_chain(service_port_name: str, protocol: str, address: str) -> str:
    return chains.endpoint_chain(service_port_name, protocol, address)


@lru_cache(maxsize=256)
def _probability(n: int) -> str:
    return f"{1.0 / n:0.10f}"


def usable_endpoints(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    """Ready endpoints; when none is ready, the serving terminating ones (upstream's fallback)."""
    endpoints = list(endpoints)
    ready = [ep for ep in endpoints if ep.ready]
    return ready or [ep for ep in endpoints if ep.serving and ep.terminating]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """What a service port's rules must do, whatever the backend (iptables or nftables) writes them with:
    upstream's traffic-policy decisions."""
    all_usable: list[Endpoint]
    local: list[Endpoint]            # usable endpoints on this node (only with a Local policy)
    cluster: list[Endpoint]          # endpoints of the cluster-policy chain ([]: no such chain)
    has_endpoints: bool
    uses_external_chain: bool
    has_internal: bool               # internal (cluster IP) traffic has somewhere to go
    has_external: bool               # external traffic has somewhere to go
    internal_local: bool             # the internal chain is the local-policy one
    external_local: bool             # the external policy chain is the local-policy one


def plan_service(sp: ServicePort, endpoints: Iterable[Endpoint], cfg: RenderConfig) -> ServicePlan:
    endpoints = tuple(endpoints)
    all_usable = usable_endpoints(endpoints)
    local = usable_endpoints(ep for ep in endpoints if ep.node_name == cfg.node_name) if (
        sp.internal_policy_local or sp.external_policy_local) else []
    has_endpoints = bool(all_usable)
    uses_external_chain = has_endpoints and sp.externally_accessible
    uses_cluster_endpoints = not sp.internal_policy_local or (
        sp.externally_accessible and not sp.external_policy_local)
    # The cluster chain also serves the EXT chain's short-circuit for pods and the node itself.
    short_circuit = uses_external_chain and sp.external_policy_local
    cluster = all_usable if uses_cluster_endpoints or short_circuit else []
    return ServicePlan(all_usable, local, cluster, has_endpoints, uses_external_chain,
                       has_internal=has_endpoints and (not sp.internal_policy_local or bool(local)),
                       has_external=has_endpoints and (not sp.external_policy_local or bool(local)),
                       internal_local=sp.internal_policy_local, external_local=sp.external_policy_local)


def _service_rules(sp: ServicePort, endpoints: tuple[Endpoint, ...], cfg: RenderConfig,
                   large: bool) -> _ServiceRules:
    out = _ServiceRules()
    name, proto = sp.name_string, sp.protocol
    match = f"-m {proto} -p {proto}"
    plan = plan_service(sp, endpoints, cfg)
    local, cluster, has_endpoints = plan.local, plan.cluster, plan.has_endpoints
    uses_external_chain, has_internal, has_external = plan.uses_external_chain, plan.has_internal, plan.has_external
    internal_chain = sp.local_chain if sp.internal_policy_local else sp.cluster_chain
    external_policy_chain = sp.local_chain if sp.external_policy_local else sp.cluster_chain

    if not has_endpoints:
        internal_target, internal_comment = "REJECT", f'"{name} has no endpoints"'
        external_target, external_comment = internal_target, internal_comment
    else:
        internal_target, internal_comment = "DROP", f'"{name} has no local endpoints"'
        external_target, external_comment = internal_target, internal_comment

    dest = f"-d {sp.cluster_ip} --dport {sp.port}"
    if has_internal:
        out.nat_services.append(f'-m comment --comment "{name} cluster IP" {match} {dest} -j {internal_chain}')
    else:
        out.filter_services.append(f"-m comment --comment {internal_comment} {match} {dest} -j {internal_target}")
    for external_ip in sp.external_ips:
        edest = f"-d {external_ip} --dport {sp.port}"
        if has_endpoints:
            out.nat_services.append(
                f'-m comment --comment "{name} external IP" {match} {edest} -j {sp.external_chain}')
        if not has_external:
            out.filter_external.append(
                f"-m comment --comment {external_comment} {match} {edest} -j {external_target}")
    for lb_ip in sp.load_balancer_ips:
        ldest = f"-d {lb_ip} --dport {sp.port}"
        if has_endpoints:
            out.nat_services.append(
                f'-m comment --comment "{name} loadbalancer IP" {match} {ldest} -j {sp.external_chain}')
        if not has_external:
            out.filter_external.append(
                f"-m comment --comment {external_comment} {match} {ldest} -j {external_target}")
    if sp.node_port:
        if has_endpoints:
            out.nat_nodeports.append(
                f"-m comment --comment {name} {match} --dport {sp.node_port} -j {sp.external_chain}")
        if not has_external:
            out.filter_external.append(
                f"-m comment --comment {external_comment} -m addrtype --dst-type LOCAL {match} "
                f"--dport {sp.node_port} -j {external_target}")

    if not has_endpoints:
        return out
    chain_lines, rules = out.own_chains, out.own_rules
    masq = chains.MARK_MASQ
    if has_internal:
        # Off-cluster sources reaching a cluster IP get masqueraded so replies come back here.
        source = "" if cfg.masquerade_all else f"! -s {cfg.cluster_cidr} "
        rules.append(f'-A {internal_chain} -m comment --comment "{name} cluster IP" {match} {dest} '
                     f"{source}-j {masq}")
    if uses_external_chain:
        ext = sp.external_chain
        chain_lines.append(ext)
        if not sp.external_policy_local:
            rules.append(f'-A {ext} -m comment --comment "masquerade traffic for {name} external destinations" '
                         f"-j {masq}")
        else:
            rules.append(f'-A {ext} -m comment --comment "pod traffic for {name} external destinations" '
                         f"-s {cfg.cluster_cidr} -j {sp.cluster_chain}")
            rules.append(f'-A {ext} -m comment --comment "masquerade LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j {masq}')
            rules.append(f'-A {ext} -m comment --comment "route LOCAL traffic for {name} external '
                         f'destinations" -m addrtype --src-type LOCAL -j {sp.cluster_chain}')
        if has_external:
            rules.append(f"-A {ext} -j {external_policy_chain}")

    reachable: dict[str, Endpoint] = {}
    if cluster:
        chain_lines.append(sp.cluster_chain)
        _balance(rules, sp, sp.cluster_chain, cluster, large)
        reachable.update((ep.address, ep) for ep in cluster)
    if local and (sp.internal_policy_local or sp.external_policy_local):
        chain_lines.append(sp.local_chain)
        _balance(rules, sp, sp.local_chain, local, large)
        reachable.update((ep.address, ep) for ep in local)
    comment = "" if large else f" -m comment --comment {name}"
    for address, ep in reachable.items():
        sep = _endpoint_chain(name, proto, address)
        chain_lines.append(sep)
        # Hairpin: a pod reaching itself through the service must be masqueraded.
        rules.append(f"-A {sep}{comment} -s {ep.ip} -j {masq}")
        affinity = f" -m recent --name {sep} --set" if sp.session_affinity_seconds else ""
        rules.append(f"-A {sep}{comment}{affinity} {match} -j DNAT --to-destination {address}")
    return out


def _balance(rules: list[str], sp: ServicePort, chain: str, endpoints: list[Endpoint], large: bool) -> None:
    name, proto = sp.name_string, sp.protocol
    seps = [(ep.address, _endpoint_chain(name, proto, ep.address)) for ep in endpoints]
    if sp.session_affinity_seconds:
        for address, sep in seps:
            comment = "" if large else f' -m comment --comment "{name} -> {address}"'
            rules.append(f"-A {chain}{comment} -m recent --name {sep} --rcheck "
                         f"--seconds {sp.session_affinity_seconds} --reap -j {sep}")
    n = len(seps)
    for i, (address, sep) in enumerate(seps):
        comment = "" if large else f' -m comment --comment "{name} -> {address}"'
        statistic = f" -m statistic --mode random --probability {_probability(n - i)}" if i < n - 1 else ""
        rules.append(f"-A {chain}{comment}{statistic} -j {sep}")


def _fixed_nat_rules(cfg: RenderConfig) -> list[str]:
    mark = cfg.masquerade_mark
    masquerade = '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE'
    return [
        f"-A {chains.POSTROUTING} -m mark ! --mark {mark}/{mark} -j RETURN",
        # Clear the mark so a packet that re-traverses the stack is not masqueraded twice.
        f"-A {chains.POSTROUTING} -j MARK --xor-mark {mark}",
        masquerade + (" --random-fully" if cfg.random_fully else ""),
        f"-A {chains.MARK_MASQ} -j MARK --or-mark {mark}",
    ]


def _fixed_filter_rules(cfg: RenderConfig) -> list[str]:
    mark = cfg.masquerade_mark
    rules = [f"-A {chains.FORWARD} -m conntrack --ctstate INVALID -j DROP"] if cfg.drop_invalid else []
    rules += [
        f'-A {chains.FORWARD} -m comment --comment "kubernetes forwarding rules" '
        f"-m mark --mark {mark}/{mark} -j ACCEPT",
        f'-A {chains.FORWARD} -m comment --comment "kubernetes forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    ]
    if cfg.localhost_node_ports:
        rules.append(f'-A {chains.FIREWALL} -m comment --comment "block incoming localnet connections" '
                     "-d 127.0.0.0/8 ! -s 127.0.0.0/8 -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP")
    return rules


def _nodeports_tail(cfg: RenderConfig) -> str:
    # NodePorts answer on every local address; on loopback only with localhost_node_ports.
    loopback = "" if cfg.localhost_node_ports else "! -d 127.0.0.0/8 "
    return (f"-A {chains.SERVICES} -m comment --comment {NODEPORTS_TAIL_COMMENT} "
            f"-m addrtype --dst-type LOCAL {loopback}-j {chains.NODEPORTS}")


def render_full(state: ProxyState, cfg: RenderConfig, stale_chains: Iterable[str] = (),
                chunk_services: int | None = None, missing_jumps: Iterable[JumpRule] = ()) -> Ruleset:
    """Every chain we own, rewritten; `stale_chains` (ours, no longer wanted) flushed and deleted;
    `missing_jumps` inserted at the top of their built-in chains.

    With `chunk_services`, the service chains go in transactions of that many service ports,
    and the shared chains that make them reachable (KUBE-SERVICES, KUBE-NODEPORTS, filter) in a
    last transaction, so traffic switches to the new rules atomically. iptables-nft-restore
    --noflush is superlinear in the size of one input (1k services 3 s, 4k 184 s here); chunks
    keep it linear. iptables-legacy rewrites the whole table per transaction: one chunk there.
    """
    large = is_large_cluster(state)
    filter_services: list[str] = []
    filter_external: list[str] = []
    nat_services: list[str] = []
    nat_nodeports: list[str] = []
    chunks: list[tuple[list[str], list[str]]] = []
    own_chains: list[str] = []
    own_rules: list[str] = []
    empty: tuple[Endpoint, ...] = ()
    endpoints = state.endpoints
    for i, name in enumerate(sorted(state.services)):
        if chunk_services and i % chunk_services == 0:
            own_chains, own_rules = [], []
            chunks.append((own_chains, own_rules))
        rules = _service_rules(state.services[name], endpoints.get(name, empty), cfg, large)
        filter_services += rules.filter_services
        filter_external += rules.filter_external
        nat_services += rules.nat_services
        nat_nodeports += rules.nat_nodeports
        own_chains += rules.own_chains
        own_rules += rules.own_rules
    if not chunk_services:
        chunks.append((own_chains, own_rules))
    written = frozenset(c for chunk_chains, _ in chunks for c in chunk_chains)
    stale = sorted(c for c in set(stale_chains) - written if chains.is_service_chain(c))

    # The hint chain tells the next start (ours or upstream's iptables-wrapper) which backend
    # holds the node's rules, without listing the big tables.
    mangle = ["*mangle", f":{chains.IPTABLES_HINT} - [0:0]", f":{chains.CANARY} - [0:0]", "COMMIT"]
    filter_table = ["*filter", *(f":{c} - [0:0]" for c in (*chains.FILTER_TOP_CHAINS, chains.CANARY))]
    filter_table += [f"-A {chains.SERVICES} {spec}" for spec in filter_services]
    filter_table += [f"-A {chains.EXTERNAL_SERVICES} {spec}" for spec in filter_external]
    filter_table += _fixed_filter_rules(cfg)
    missing_jumps = list(missing_jumps)
    filter_table += [_jump_line(j) for j in missing_jumps if j.table == "filter"]
    filter_table.append("COMMIT")
    masquerade_chains = [f":{chains.POSTROUTING} - [0:0]", f":{chains.MARK_MASQ} - [0:0]"]
    shared_chains = [f":{chains.SERVICES} - [0:0]", f":{chains.NODEPORTS} - [0:0]", f":{chains.CANARY} - [0:0]"]
    shared_rules = [f"-A {chains.SERVICES} {spec}" for spec in nat_services]
    shared_rules.append(_nodeports_tail(cfg))
    shared_rules += [f"-A {chains.NODEPORTS} {spec}" for spec in nat_nodeports]
    shared_rules += [_jump_line(j) for j in missing_jumps if j.table == "nat"]
    stale_declared = [f":{c} - [0:0]" for c in stale]
    stale_deleted = [f"-X {c}" for c in stale]

    def service_chains(chunk: tuple[list[str], list[str]]) -> list[str]:
        return [f":{c} - [0:0]" for c in chunk[0]]

    if not chunk_services:
        nat = ["*nat", *masquerade_chains, *shared_chains, *service_chains(chunks[0]), *stale_declared,
               *_fixed_nat_rules(cfg), *shared_rules, *chunks[0][1], *stale_deleted, "COMMIT"]
        return Ruleset(("\n".join([*mangle, *filter_table, *nat, ""]),), written, frozenset(stale))
    # KUBE-MARK-MASQ first: every service chain jumps to it.
    transactions = ["\n".join([*mangle, "*nat", *masquerade_chains, *_fixed_nat_rules(cfg), "COMMIT", ""])]
    transactions += ["\n".join(["*nat", *service_chains(chunk), *chunk[1], "COMMIT", ""]) for chunk in chunks]
    transactions.append("\n".join([*filter_table, "*nat", *shared_chains, *stale_declared, *shared_rules,
                                    *stale_deleted, "COMMIT", ""]))
    return Ruleset(tuple(transactions), written, frozenset(stale))


def _jump_line(jump: JumpRule) -> str:
    words = (f'"{word}"' if " " in word else word for word in jump.spec)
    return f"-I {jump.chain} 1 {' '.join(words)}"


def render_partial(previous: ProxyState, current: ProxyState, changed: Iterable[ServicePortName],
                   cfg: RenderConfig, large: bool | None = None) -> Ruleset:
    """A `--noflush` transaction moving the kernel from `previous` to `current` for `changed`.

    Only valid when the kernel holds exactly what `previous` rendered, in the same cluster-size
    mode `large` (the caller falls back to a full sync when the mode changes).
    """
    if large is None:
        large = is_large_cluster(current)
    empty: tuple[Endpoint, ...] = ()
    deletes: dict[tuple[str, str], list[str]] = {}
    adds: dict[tuple[str, str], list[str]] = {}
    declared: list[str] = []
    own_rules: list[str] = []
    removed: set[str] = set()
    for name in sorted(set(changed)):
        old_sp, new_sp = previous.services.get(name), current.services.get(name)
        old = (_service_rules(old_sp, previous.endpoints.get(name, empty), cfg, large)
               if old_sp else _ServiceRules())
        new = (_service_rules(new_sp, current.endpoints.get(name, empty), cfg, large)
               if new_sp else _ServiceRules())
        for key, old_specs, new_specs in (
                (("nat", chains.SERVICES), old.nat_services, new.nat_services),
                (("nat", chains.NODEPORTS), old.nat_nodeports, new.nat_nodeports),
                (("filter", chains.SERVICES), old.filter_services, new.filter_services),
                (("filter", chains.EXTERNAL_SERVICES), old.filter_external, new.filter_external)):
            keep = set(new_specs)
            deletes.setdefault(key, []).extend(s for s in old_specs if s not in keep)
            had = set(old_specs)
            adds.setdefault(key, []).extend(s for s in new_specs if s not in had)
        declared += new.own_chains
        own_rules += new.own_rules
        removed.update(set(old.own_chains) - set(new.own_chains))

    out: list[str] = []
    filter_lines = _edits(("filter", chains.SERVICES), deletes, adds)
    filter_lines += _edits(("filter", chains.EXTERNAL_SERVICES), deletes, adds)
    if filter_lines:
        out += ["*filter", *filter_lines, "COMMIT"]
    stale = sorted(removed - set(declared))
    nat_lines = [f":{c} - [0:0]" for c in declared]
    nat_lines += [f":{c} - [0:0]" for c in stale]
    # Deletions from the shared chains come first: they drop references to chains removed below.
    nat_lines += [f"-D {chains.SERVICES} {s}" for s in deletes.get(("nat", chains.SERVICES), ())]
    nat_lines += [f"-D {chains.NODEPORTS} {s}" for s in deletes.get(("nat", chains.NODEPORTS), ())]
    nat_lines += own_rules
    # Inserted at the top: KUBE-SERVICES must keep the KUBE-NODEPORTS jump as its last rule.
    nat_lines += [f"-I {chains.SERVICES} 1 {s}" for s in adds.get(("nat", chains.SERVICES), ())]
    nat_lines += [f"-A {chains.NODEPORTS} {s}" for s in adds.get(("nat", chains.NODEPORTS), ())]
    nat_lines += [f"-X {c}" for c in stale]
    if nat_lines:
        out += ["*nat", *nat_lines, "COMMIT"]
    out.append("")
    return Ruleset(("\n".join(out),), frozenset(declared), frozenset(stale))


def _edits(key: tuple[str, str], deletes: dict[tuple[str, str], list[str]],
           adds: dict[tuple[str, str], list[str]]) -> list[str]:
    chain = key[1]
    return [f"-D {chain} {s}" for s in deletes.get(key, ())] + [f"-A {chain} {s}" for s in adds.get(key, ())]
