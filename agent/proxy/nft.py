"""Services + endpoints → `nft -f` transactions, for the proxy's nftables mode. Pure.

One table of our own (`ip shipmate-proxy`), beside the iptables-nft tables (NetworkPolicy, hostPorts):
each table's base chains run at their hook, in priority order, and a verdict in one table ends only that
table's chain. The layout follows kube-proxy's nftables mode in spirit; the code is ours:

- `services` (from the nat prerouting/output hooks) looks the destination up in two verdict maps:
  `service-ips` (cluster, external and load-balancer IP . protocol . port → goto the service's chain)
  and `service-nodeports` (protocol . port → goto its external chain, for local destinations): one
  hash lookup per packet instead of a walk over one rule per service.
- Per service port: `svc-<hash>` (cluster policy), `svl-<hash>` (local policy), `ext-<hash>`
  (external traffic), the hashes of the iptables mode's chain names. A policy chain picks an endpoint
  with one lookup in the service port's own map, `meta l4proto tcp dnat ip to numgen random mod n map @eps-<hash>`
  (bucket → endpoint address . port; `epl-` for the local policy): no per-endpoint chains and no
  anonymous sets. That matters at 10k services: `nft` fetches every chain (with its rules) before it
  applies a rule and the kernel re-validates the whole jump graph on a commit that adds a jump, but an
  endpoint change that keeps the count moves the map's elements only, and one that changes it rewrites
  the one rule of one chain, which holds no jump. The map is the service's own, not shared: the
  kernel checks every element added to a map against each rule using it, so one map used by 10k
  chains makes a full sync quadratic. With session affinity the chain keeps one rule per endpoint
  (`numgen random mod k == 0`, probability 1/k as iptables' statistic match) that remembers the client.
- Hairpin (a pod reaching itself through its service) is masqueraded in postrouting: a set of
  `endpoint . endpoint` pairs matched on DNATed connections (its elements are counted by `HairpinRefs`).
- Session affinity: one dynamic set with timeout per (service port, endpoint), checked before the
  random pick and refreshed (`update`) on every new connection that goes to that endpoint.
- Services without endpoints: plain sets (no verdicts, so no graph validation) checked from filter
  chains at priority filter - 10: reject for the cluster IP, drop/reject for external IPs and NodePorts.
- A full sync deletes and recreates the table in one transaction (affinity entries start over), its text
  reused for the service ports unchanged since the last one (`RenderCache`); a
  partial sync moves map and set elements and rewrites only the chains whose rules changed.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.proxy import chains
from agent.proxy.model import Endpoint, ServicePort, ServicePortName
from agent.proxy.render import ProxyState, RenderConfig, plan_service
from netns.nft_netlink import IPV4, PORT, U32, ElementChange, encode

TABLE = "shipmate-proxy"
FAMILY_TABLE = f"ip {TABLE}"
# Element lines are cut at this many elements (nft parses one long line slower than several).
ELEMENTS_PER_LINE = 1000

# Named sets and maps: name → declaration body.
SERVICE_IPS = "service-ips"
SERVICE_NODEPORTS = "service-nodeports"
CLUSTER_NO_ENDPOINTS = "cluster-no-endpoints"      # cluster IP . proto . port: reject
EXTERNAL_REJECT = "external-reject"                # external/LB IP . proto . port without endpoints
EXTERNAL_DROP = "external-drop"                    # ... with endpoints, none local (Local policy)
NODEPORT_REJECT = "nodeport-reject"                # proto . port
NODEPORT_DROP = "nodeport-drop"
HAIRPIN = "hairpin"
# Endpoints, shared by every service port of a protocol: (destination . port . random bucket) and, for
# NodePorts, (port . bucket) → endpoint address . port, for the cluster and the local policy.
PROTOCOLS = ("tcp", "udp", "sctp")
CLUSTER_ENDPOINTS, LOCAL_ENDPOINTS = "cluster-endpoints", "local-endpoints"
CLUSTER_NODEPORT_ENDPOINTS, LOCAL_NODEPORT_ENDPOINTS = "cluster-nodeport-endpoints", "local-nodeport-endpoints"


def endpoint_maps(local: bool, protocol: str) -> tuple[str, str]:
    """The (by destination, by NodePort) endpoint maps of a policy and protocol."""
    by_ip, by_port = ((LOCAL_ENDPOINTS, LOCAL_NODEPORT_ENDPOINTS) if local
                      else (CLUSTER_ENDPOINTS, CLUSTER_NODEPORT_ENDPOINTS))
    return f"{by_ip}-{protocol}", f"{by_port}-{protocol}"


_IP_PROTO_PORT = "ipv4_addr . inet_proto . inet_service"
_PROTO_PORT = "inet_proto . inet_service"
COLLECTIONS: dict[str, str] = {
    SERVICE_IPS: f"map ... {{ type {_IP_PROTO_PORT} : verdict; }}",
    SERVICE_NODEPORTS: f"map ... {{ type {_PROTO_PORT} : verdict; }}",
    CLUSTER_NO_ENDPOINTS: f"set ... {{ type {_IP_PROTO_PORT}; }}",
    EXTERNAL_REJECT: f"set ... {{ type {_IP_PROTO_PORT}; }}",
    EXTERNAL_DROP: f"set ... {{ type {_IP_PROTO_PORT}; }}",
    NODEPORT_REJECT: f"set ... {{ type {_PROTO_PORT}; }}",
    NODEPORT_DROP: f"set ... {{ type {_PROTO_PORT}; }}",
    HAIRPIN: "set ... { type ipv4_addr . ipv4_addr; }",
    **{name: f"map ... {{ typeof {'ip daddr . ' if i == 0 else ''}{proto} dport . numgen random mod 1 : "
                f"ip daddr . {proto} dport; }}"
       for proto in PROTOCOLS for local in (False, True) for i, name in enumerate(endpoint_maps(local, proto))},
}
MAPS = frozenset(name for name, decl in COLLECTIONS.items() if decl.startswith("map"))

CLUSTER_PREFIX, LOCAL_PREFIX, EXTERNAL_PREFIX, AFFINITY_PREFIX = "svc-", "svl-", "ext-", "aff-"
PICK_PREFIX = "pick-"   # pick-<cluster|local>-<protocol>-<endpoint count>: shared by the service ports
SERVICE_CHAIN_PREFIXES = (CLUSTER_PREFIX, LOCAL_PREFIX, EXTERNAL_PREFIX)


def _base_chains(cfg: RenderConfig) -> dict[str, tuple[str, list[str]]]:
    """Fixed chains: name → (declaration after the name, rules)."""
    mark = cfg.masquerade_mark
    nodeports = "fib daddr type local " + ("" if cfg.localhost_node_ports else "ip daddr != 127.0.0.0/8 ")
    firewall = ["ip daddr 127.0.0.0/8 ip saddr != 127.0.0.0/8 ct state & (established | related) == 0 "
                "ct status & dnat == 0 drop"] if cfg.localhost_node_ports else []
    forward = ["ct state invalid drop"] if cfg.drop_invalid else []
    return {
        "nat-prerouting": ("{ type nat hook prerouting priority -100; policy accept; }", ["jump services"]),
        "nat-output": ("{ type nat hook output priority -100; policy accept; }", ["jump services"]),
        "nat-postrouting": ("{ type nat hook postrouting priority 100; policy accept; }", ["jump masquerading"]),
        "filter-input": ("{ type filter hook input priority -10; policy accept; }",
                         ["ct state new jump external-services-check", *firewall]),
        "filter-forward": ("{ type filter hook forward priority -10; policy accept; }",
                           [*forward, "ct state new jump service-endpoints-check",
                            "ct state new jump external-services-check"]),
        "filter-output": ("{ type filter hook output priority -10; policy accept; }",
                          ["ct state new jump service-endpoints-check", *firewall]),
        "services": ("", [f"ip daddr . meta l4proto . th dport vmap @{SERVICE_IPS}",
                          f"{nodeports}meta l4proto . th dport vmap @{SERVICE_NODEPORTS}"]),
        "masquerading": ("", [f"ct status dnat ip saddr . ip daddr @{HAIRPIN} meta mark set meta mark | {mark}",
                              f"meta mark & {mark} == 0 return",
                              f"meta mark set meta mark ^ {mark}",
                              "masquerade" + (" fully-random" if cfg.random_fully else "")]),
        "service-endpoints-check": ("", [f"ip daddr . meta l4proto . th dport @{CLUSTER_NO_ENDPOINTS} reject"]),
        "external-services-check": ("", [f"ip daddr . meta l4proto . th dport @{EXTERNAL_REJECT} reject",
                                         f"ip daddr . meta l4proto . th dport @{EXTERNAL_DROP} drop",
                                         f"fib daddr type local meta l4proto . th dport @{NODEPORT_REJECT} reject",
                                         f"fib daddr type local meta l4proto . th dport @{NODEPORT_DROP} drop"]),
    }


def _hash(sp: ServicePort) -> str:
    return sp.cluster_chain[len(chains.CLUSTER_POLICY_PREFIX):]


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    """Named after the endpoint chain of the iptables mode and the timeout: a new timeout is a new set, so
    the rules that use it change too and their chain is rewritten before the old set goes."""
    digest = chains.endpoint_chain(sp.name_string, sp.protocol, ep.address)[len(chains.ENDPOINT_PREFIX):]
    return f"{AFFINITY_PREFIX}{digest}-{sp.session_affinity_seconds}"


@dataclass(slots=True)
class NftService:
    """One service port in nft terms: its elements per named set/map (shared or its own), its own chains
    (name → rules), its own sets (name → declaration: affinity sets), the shared pick chains it jumps
    to and the endpoint IPs its hairpin pairs need."""
    elements: dict[str, dict[str, str]] = field(default_factory=dict)   # set → {key: value ("" for sets)}
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sets: dict[str, str] = field(default_factory=dict)
    picks: dict[str, tuple[str, ...]] = field(default_factory=dict)     # shared pick chains it uses
    hairpin: frozenset[str] = frozenset()


def pick_chain(local: bool, protocol: str, count: int) -> tuple[str, tuple[str, ...]]:
    """The chain that DNATs to one of `count` endpoints through the shared endpoint maps: name, rules.
    Shared by every service port with that policy, protocol and count, so each map has a handful of
    users whatever the number of services (the kernel checks every element added to a map against
    each rule using it: a map used by one rule per service would make a full sync quadratic)."""
    by_ip, by_port = endpoint_maps(local, protocol)
    pick = f"numgen random mod {count}"
    return (f"{PICK_PREFIX}{'local' if local else 'cluster'}-{protocol}-{count}",
            (f"dnat ip to ip daddr . {protocol} dport . {pick} map @{by_ip}",
             f"dnat ip to {protocol} dport . {pick} map @{by_port}"))


def affinity_decl(seconds: int) -> str:
    return f"{{ type ipv4_addr; flags dynamic,timeout; timeout {seconds}s; }}"


def _balance(sp: ServicePort, endpoints: list[Endpoint], local: bool, out: NftService,
             element: Callable[[str, str, str], None]) -> list[str]:
    """Pick one endpoint uniformly and DNAT to it. Without session affinity: `goto` the shared pick
    chain of the endpoint count, which looks (destination . port . random bucket), or for NodePorts
    (port . bucket), up in the shared endpoint maps whose elements are this service port's endpoints:
    an endpoint change that keeps the count moves elements only. With affinity: one rule per endpoint
    (rule i matches with probability 1/(n-i)), which remembers the client."""
    proto = sp.protocol
    n = len(endpoints)
    if not sp.session_affinity_seconds:
        by_ip, by_port = endpoint_maps(local, proto)
        for address in (sp.cluster_ip, *sp.external_ips, *sp.load_balancer_ips):
            for bucket, ep in enumerate(endpoints):
                element(by_ip, f"{address} . {sp.port} . {bucket}", f"{ep.ip} . {ep.port}")
        if sp.node_port:
            for bucket, ep in enumerate(endpoints):
                element(by_port, f"{sp.node_port} . {bucket}", f"{ep.ip} . {ep.port}")
        name, rules = pick_chain(local, proto, n)
        out.picks[name] = rules
        return [f"goto {name}"]
    rules = []
    for ep in endpoints:
        aff = affinity_set(sp, ep)
        out.sets[aff] = affinity_decl(sp.session_affinity_seconds)
        rules.append(f"ip saddr @{aff} update @{aff} {{ ip saddr }} meta l4proto {proto} dnat to {ep.address}")
    for i, ep in enumerate(endpoints):
        pick = f"numgen random mod {n - i} == 0 " if i < n - 1 else ""
        rules.append(f"{pick}update @{affinity_set(sp, ep)} {{ ip saddr }} meta l4proto {proto} dnat to {ep.address}")
    return rules


def service_rules(sp: ServicePort, endpoints: Iterable[Endpoint], cfg: RenderConfig) -> NftService:
    out = NftService()
    plan = plan_service(sp, endpoints, cfg)
    proto, digest = sp.protocol, _hash(sp)
    mark = f"meta mark set meta mark | {cfg.masquerade_mark}"
    svc, svl, ext = CLUSTER_PREFIX + digest, LOCAL_PREFIX + digest, EXTERNAL_PREFIX + digest
    internal_chain = svl if sp.internal_policy_local else svc
    external_policy_chain = svl if sp.external_policy_local else svc
    elements: dict[str, dict[str, str]] = {}

    def element(collection: str, key: str, value: str = "") -> None:
        elements.setdefault(collection, {})[key] = value

    cluster_key = f"{sp.cluster_ip} . {proto} . {sp.port}"
    if plan.has_internal:
        element(SERVICE_IPS, cluster_key, f"goto {internal_chain}")
    else:
        # No endpoints: rejected; endpoints but none local with internalTrafficPolicy Local: dropped
        # (the iptables mode's filter DROP), which the no-endpoint set cannot say: reject covers both.
        element(CLUSTER_NO_ENDPOINTS, cluster_key)
    outside = EXTERNAL_REJECT if not plan.has_endpoints else EXTERNAL_DROP
    for ip in (*sp.external_ips, *sp.load_balancer_ips):
        key = f"{ip} . {proto} . {sp.port}"
        if plan.has_endpoints:
            element(SERVICE_IPS, key, f"goto {ext}")
        if not plan.has_external:
            element(outside, key)
    if sp.node_port:
        key = f"{proto} . {sp.node_port}"
        if plan.has_endpoints:
            element(SERVICE_NODEPORTS, key, f"goto {ext}")
        if not plan.has_external:
            element(NODEPORT_REJECT if not plan.has_endpoints else NODEPORT_DROP, key)
    out.elements = elements
    if not plan.has_endpoints:
        return out

    own: dict[str, list[str]] = {}
    if plan.has_internal:
        # Off-cluster sources reaching a cluster IP get masqueraded so replies come back here.
        source = "" if cfg.masquerade_all else f"ip saddr != {cfg.cluster_cidr} "
        own.setdefault(internal_chain, []).append(
            f"ip daddr {sp.cluster_ip} meta l4proto {proto} th dport {sp.port} {source}{mark}")
    if plan.uses_external_chain:
        rules = own.setdefault(ext, [])
        if not sp.external_policy_local:
            rules.append(mark)
        else:
            rules.append(f"ip saddr {cfg.cluster_cidr} goto {svc}")
            rules.append(f"fib saddr type local {mark}")
            rules.append(f"fib saddr type local goto {svc}")
        if plan.has_external:
            rules.append(f"goto {external_policy_chain}")
    hairpin: set[str] = set()
    if plan.cluster:
        own.setdefault(svc, []).extend(_balance(sp, plan.cluster, False, out, element))
        hairpin.update(ep.ip for ep in plan.cluster)
    if plan.local and (sp.internal_policy_local or sp.external_policy_local):
        own.setdefault(svl, []).extend(_balance(sp, plan.local, True, out, element))
        hairpin.update(ep.ip for ep in plan.local)
    out.chains = {name: tuple(rules) for name, rules in own.items()}
    out.hairpin = frozenset(hairpin)
    return out


# --- text -------------------------------------------------------------------------------------------
def _set_decl(name: str) -> str:
    kind, _, body = COLLECTIONS[name].partition(" ... ")
    return f"add {kind} {FAMILY_TABLE} {name} {body}"


def _own_set_decl(name: str, declaration: str) -> str:
    return f"add set {FAMILY_TABLE} {name} {declaration}"


def _element_texts(verb: str, items: Iterable[tuple[str, str]]) -> list[str]:
    return [f"{key} : {value}" if value and verb == "add" else key for key, value in items]


def _element_lines(verb: str, collection: str, items: Iterable[tuple[str, str]]) -> list[str]:
    """`add element` (key : value for maps) or `delete element` (keys only), ELEMENTS_PER_LINE per line."""
    texts = _element_texts(verb, items)
    return [f"{verb} element {FAMILY_TABLE} {collection} {{ {', '.join(texts[i:i + ELEMENTS_PER_LINE])} }}"
            for i in range(0, len(texts), ELEMENTS_PER_LINE)]


def _chain_lines(name: str, rules: Iterable[str]) -> list[str]:
    return [f"add rule {FAMILY_TABLE} {name} {rule}" for rule in rules]


class HairpinRefs:
    """How many rendered service ports send traffic to each endpoint IP: the hairpin set holds the IPs
    with a count above zero. A partial render records its moves in a `child()` (no copy of the counts,
    which hold every endpoint of the cluster); `commit()` folds them into the parent once applied."""

    def __init__(self, counts: Counter | None = None, parent: "HairpinRefs | None" = None):
        self.counts: Counter = Counter() if counts is None else counts
        self._parent = parent
        self._changed: dict[str, int] = {}   # a child's new counts (0: gone)

    def child(self) -> "HairpinRefs":
        return HairpinRefs(parent=self)

    def get(self, ip: str) -> int:
        if self._parent is None:
            return self.counts.get(ip, 0)
        return self._changed[ip] if ip in self._changed else self._parent.get(ip)

    def _set(self, ip: str, count: int) -> None:
        if self._parent is not None:
            self._changed[ip] = count
        elif count > 0:
            self.counts[ip] = count
        else:
            self.counts.pop(ip, None)

    def commit(self) -> "HairpinRefs":
        """The parent with this child's moves folded in (the parent itself changes)."""
        if self._parent is None:
            return self
        parent = self._parent.commit()
        for ip, count in self._changed.items():
            parent._set(ip, count)
        return parent

    def move(self, removed: Iterable[str], added: Iterable[str]) -> tuple[list[str], list[str]]:
        """Apply one service's change; returns (IPs that left the set, IPs that entered it)."""
        gone, new = [], []
        for ip in removed:
            count = self.get(ip) - 1
            self._set(ip, count)
            if count <= 0:
                gone.append(ip)
        for ip in added:
            count = self.get(ip)
            if count <= 0:
                new.append(ip)
            self._set(ip, max(count, 0) + 1)
        return gone, new


# How the elements of the collections that change with endpoints are laid out (key, value), so a partial
# sync that only moves those goes to the kernel as one netlink element batch (netns.nft_netlink).
LAYOUTS: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    HAIRPIN: ((IPV4, IPV4), None),
    **{by_ip: ((IPV4, PORT, U32), (IPV4, PORT)) for proto in PROTOCOLS for local in (False, True)
       for by_ip in endpoint_maps(local, proto)[:1]},
    **{by_port: ((PORT, U32), (IPV4, PORT)) for proto in PROTOCOLS for local in (False, True)
       for by_port in endpoint_maps(local, proto)[1:]},
}


def element_changes(deletes: dict[str, list[tuple[str, str]]],
                    adds: dict[str, list[tuple[str, str]]]) -> tuple[ElementChange, ...] | None:
    """The element moves as netlink element changes (deletes first), or None when one of the collections
    has no layout here (it goes through `nft`)."""
    out: list[ElementChange] = []
    for delete, moves in ((True, deletes), (False, adds)):
        for collection, items in moves.items():
            if not items:
                continue
            if collection not in LAYOUTS:
                return None
            key_kinds, value_kinds = LAYOUTS[collection]
            out.append(ElementChange(collection, delete, tuple(
                (encode(key_kinds, key), None if value_kinds is None or delete else encode(value_kinds, value))
                for key, value in items)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class NftRuleset:
    text: str                    # one `nft -f` transaction
    hairpin: HairpinRefs         # the hairpin counts once it is applied (commit() a partial's)
    chains: int = 0              # service chains written (rewritten) by it
    elements: int = 0            # elements added or deleted
    picks: frozenset[str] = frozenset()   # the pick chains in the table once it is applied
    # A partial transaction that only moves elements of LAYOUTS' collections: the same as `text`, for netlink.
    element_changes: tuple[ElementChange, ...] | None = None
    # A full sync's elements of LAYOUTS' collections that `text` leaves out (render_full's `bulk`).
    bulk: dict[str, list[tuple[str, str]]] | None = None


@dataclass(frozen=True, slots=True)
class _ServiceText:
    """One service port's share of a full render's text, joined (a few strings per service port, not one
    per line and element: at 10k services the cache holds ≈10 MiB instead of ≈30)."""
    service: ServicePort
    endpoints: tuple[Endpoint, ...]
    shared: tuple[tuple[str, int, str], ...]   # (shared collection, element count, its elements joined)
    sets: str            # its own sets' declarations and elements, lines joined ("" if none)
    chains: str          # `add chain` lines
    rules: str           # `add rule` lines
    picks: dict[str, tuple[str, ...]]
    chain_count: int
    hairpin: frozenset[str]


def _service_text(sp: ServicePort, endpoints: tuple[Endpoint, ...], cfg: RenderConfig) -> _ServiceText:
    rendered = service_rules(sp, endpoints, cfg)
    shared, own = [], [_own_set_decl(name, decl) for name, decl in rendered.sets.items()]
    for collection, items in rendered.elements.items():
        if collection in COLLECTIONS:
            shared.append((collection, len(items), ", ".join(_element_texts("add", items.items()))))
        else:
            own += _element_lines("add", collection, items.items())
    rules = [line for chain, chain_rules in rendered.chains.items() for line in _chain_lines(chain, chain_rules)]
    return _ServiceText(sp, endpoints, tuple(shared), "\n".join(own),
                        "\n".join(f"add chain {FAMILY_TABLE} {chain}" for chain in rendered.chains),
                        "\n".join(rules), rendered.picks, len(rendered.chains), rendered.hairpin)


class RenderCache:
    """What the last full render made of each service port, so the next one (the periodic full sync, a
    canary repair) renders again only the service ports whose service or endpoints changed since: at
    10k services that is most of the render's time, spent before `nft` can start. Filled by the renders
    of whole text (a new table's render leaves the endpoint elements out of its text, so it neither uses
    nor fills it)."""

    def __init__(self) -> None:
        self._config: RenderConfig | None = None
        self._entries: dict[ServicePortName, _ServiceText] = {}
        self.rendered = 0    # service ports the last full render had to render (tests, logs)

    def text_of(self, name: ServicePortName, sp: ServicePort, endpoints: tuple[Endpoint, ...],
                cfg: RenderConfig, keep: dict[ServicePortName, _ServiceText]) -> _ServiceText:
        entry = self._entries.get(name) if cfg == self._config else None
        if entry is None or not ((entry.service is sp or entry.service == sp)
                                 and (entry.endpoints is endpoints or entry.endpoints == endpoints)):
            entry = _service_text(sp, endpoints, cfg)
            self.rendered += 1
        keep[name] = entry
        return entry

    def replace(self, cfg: RenderConfig, entries: dict[ServicePortName, _ServiceText]) -> None:
        self._config, self._entries = cfg, entries   # entries of gone service ports go with the old dict


def _joined_element_lines(collection: str, pieces: list[tuple[int, str]]) -> list[str]:
    """`add element` lines of service ports' joined elements, cut after about ELEMENTS_PER_LINE elements."""
    lines, line, count = [], [], 0
    for size, text in pieces:
        line.append(text)
        count += size
        if count >= ELEMENTS_PER_LINE:
            lines.append(f"add element {FAMILY_TABLE} {collection} {{ {', '.join(line)} }}")
            line, count = [], 0
    if line:
        lines.append(f"add element {FAMILY_TABLE} {collection} {{ {', '.join(line)} }}")
    return lines


def _add_chains(lines: list[str], picks: dict[str, tuple[str, ...]], chain_lines: list[str],
                rule_lines: list[str], base: dict[str, tuple[str, list[str]]]) -> None:
    """The pick chains, the service ports' chains, then their rules and the base chains' (which jump to them)."""
    for pick in sorted(picks):
        lines.append(f"add chain {FAMILY_TABLE} {pick}")
        lines += _chain_lines(pick, picks[pick])
    lines += chain_lines + rule_lines
    for name, (_, rules) in base.items():
        lines += _chain_lines(name, rules)


def render_full(state: ProxyState, cfg: RenderConfig, bulk: bool = False,
                cache: RenderCache | None = None) -> NftRuleset:
    """The whole table, recreated in one transaction (`add` + `delete` first: it may not exist yet). `bulk`:
    the elements of LAYOUTS' collections are left out of the text, in `bulk`, for one netlink batch after it.
    `cache` (whole text only): reuse what the last full render with it made of unchanged service ports."""
    lines = [f"add table {FAMILY_TABLE}", f"delete table {FAMILY_TABLE}", f"add table {FAMILY_TABLE}"]
    base = _base_chains(cfg)
    lines += [f"add chain {FAMILY_TABLE} {name} {decl}".rstrip() for name, (decl, _) in base.items()]
    lines += [_set_decl(name) for name in COLLECTIONS]
    if bulk:
        return _render_bulk(state, cfg, base, lines)
    cache = cache if cache is not None else RenderCache()
    cache.rendered = 0
    pieces: dict[str, list[tuple[int, str]]] = {name: [] for name in COLLECTIONS}
    set_lines: list[str] = []
    chain_lines: list[str] = []
    rule_lines: list[str] = []
    refs = HairpinRefs()
    empty: tuple[Endpoint, ...] = ()
    written = count = 0
    picks: dict[str, tuple[str, ...]] = {}
    kept: dict[ServicePortName, _ServiceText] = {}
    hairpin_ips: list[str] = []
    for name in sorted(state.services):
        text = cache.text_of(name, state.services[name], state.endpoints.get(name, empty), cfg, kept)
        picks.update(text.picks)
        for collection, size, joined in text.shared:
            pieces[collection].append((size, joined))
            count += size
        if text.sets:
            set_lines.append(text.sets)
        if text.chain_count:
            chain_lines.append(text.chains)
            rule_lines.append(text.rules)
        written += text.chain_count
        hairpin_ips += text.hairpin
    refs.counts.update(hairpin_ips)      # one counting pass, not one per service port
    cache.replace(cfg, kept)
    lines += set_lines
    _add_chains(lines, picks, chain_lines, rule_lines, base)
    hairpin = [f"{ip} . {ip}" for ip in sorted(refs.counts)]
    pieces[HAIRPIN] = [(1, element) for element in hairpin]
    count += len(hairpin)
    for collection, collection_pieces in pieces.items():
        lines += _joined_element_lines(collection, collection_pieces)
    return NftRuleset("\n".join(lines) + "\n", refs, written, count, frozenset(picks))


def _render_bulk(state: ProxyState, cfg: RenderConfig, base: dict[str, tuple[str, list[str]]],
                 lines: list[str]) -> NftRuleset:
    elements: dict[str, list[tuple[str, str]]] = {name: [] for name in COLLECTIONS}
    own_elements: list[str] = []
    rule_lines: list[str] = []
    chain_lines: list[str] = []
    set_lines: list[str] = []
    refs = HairpinRefs()
    empty: tuple[Endpoint, ...] = ()
    written = 0
    picks: dict[str, tuple[str, ...]] = {}
    for name in sorted(state.services):
        rendered = service_rules(state.services[name], state.endpoints.get(name, empty), cfg)
        picks.update(rendered.picks)
        for collection, items in rendered.elements.items():
            if collection in elements:
                elements[collection].extend(items.items())
            else:
                own_elements += _element_lines("add", collection, items.items())
        for chain, rules in rendered.chains.items():
            chain_lines.append(f"add chain {FAMILY_TABLE} {chain}")
            rule_lines += _chain_lines(chain, rules)
        written += len(rendered.chains)
        set_lines += [_own_set_decl(name, decl) for name, decl in rendered.sets.items()]
        refs.counts.update(rendered.hairpin)
    lines += set_lines + own_elements
    _add_chains(lines, picks, chain_lines, rule_lines, base)
    elements[HAIRPIN] = [(f"{ip} . {ip}", "") for ip in sorted(refs.counts)]
    count = 0
    bulk_elements: dict[str, list[tuple[str, str]]] = {}
    for collection, items in elements.items():
        if collection in LAYOUTS:
            bulk_elements[collection] = items
        else:
            lines += _element_lines("add", collection, items)
        count += len(items)
    return NftRuleset("\n".join(lines) + "\n", refs, written, count, frozenset(picks), bulk=bulk_elements)


def render_partial(previous: ProxyState, current: ProxyState, changed: Iterable[ServicePortName],
                   cfg: RenderConfig, hairpin: HairpinRefs, picks: frozenset[str] = frozenset()) -> NftRuleset:
    """One transaction moving the table from what `previous` rendered to `current`, for `changed`:
    elements deleted, changed chains flushed, gone own sets/maps and chains deleted, new sets, maps and
    chains added, rules written, elements added, in that order (nothing is deleted while still referenced)."""
    refs = hairpin.child()
    empty: tuple[Endpoint, ...] = ()
    deletes: dict[str, list[tuple[str, str]]] = {}
    adds: dict[str, list[tuple[str, str]]] = {}
    flushed: list[str] = []
    deleted_chains: list[str] = []
    new_chains: list[str] = []
    rules: list[str] = []
    deleted_sets: list[str] = []
    new_sets: list[str] = []
    hairpin_gone: list[str] = []
    hairpin_new: list[str] = []
    new_picks: dict[str, tuple[str, ...]] = {}
    for name in sorted(set(changed)):
        old_sp, new_sp = previous.services.get(name), current.services.get(name)
        old = service_rules(old_sp, previous.endpoints.get(name, empty), cfg) if old_sp else NftService()
        new = service_rules(new_sp, current.endpoints.get(name, empty), cfg) if new_sp else NftService()
        # Own sets and maps that go (or are declared anew): their elements go with them.
        redeclared = {set_name for set_name, declaration in old.sets.items() if new.sets.get(set_name) != declaration}
        for collection in sorted(old.elements.keys() | new.elements.keys()):
            before = {} if collection in redeclared else old.elements.get(collection, {})
            after = new.elements.get(collection, {})
            deletes.setdefault(collection, []).extend(
                (key, value) for key, value in before.items() if after.get(key) != value)
            adds.setdefault(collection, []).extend(
                (key, value) for key, value in after.items() if before.get(key) != value)
        for chain, chain_rules in new.chains.items():
            if chain not in old.chains:
                new_chains.append(chain)
                rules += _chain_lines(chain, chain_rules)
            elif old.chains[chain] != chain_rules:
                flushed.append(chain)
                rules += _chain_lines(chain, chain_rules)
        gone = [chain for chain in old.chains if chain not in new.chains]
        flushed += gone
        deleted_chains += gone
        deleted_sets += sorted(redeclared)
        new_sets += [_own_set_decl(set_name, declaration) for set_name, declaration in new.sets.items()
                     if old.sets.get(set_name) != declaration]
        new_picks.update((pick, pick_rules) for pick, pick_rules in new.picks.items() if pick not in picks)
        left, entered = refs.move(sorted(old.hairpin), sorted(new.hairpin))
        hairpin_gone += left
        hairpin_new += entered
    # An IP that left with one service and entered with another in the same sync stays in the set.
    both = set(hairpin_gone) & set(hairpin_new)
    deletes.setdefault(HAIRPIN, []).extend((f"{ip} . {ip}", "") for ip in hairpin_gone if ip not in both)
    adds.setdefault(HAIRPIN, []).extend((f"{ip} . {ip}", "") for ip in hairpin_new if ip not in both)

    lines: list[str] = []
    for collection, items in deletes.items():
        lines += _element_lines("delete", collection, items)
    lines += [f"flush chain {FAMILY_TABLE} {chain}" for chain in flushed]
    lines += [f"delete set {FAMILY_TABLE} {name}" for name in deleted_sets]
    lines += [f"delete chain {FAMILY_TABLE} {chain}" for chain in deleted_chains]
    lines += new_sets
    # Pick chains stay once made (a later full sync drops the unused ones).
    for pick in sorted(new_picks):
        lines.append(f"add chain {FAMILY_TABLE} {pick}")
        lines += _chain_lines(pick, new_picks[pick])
    lines += [f"add chain {FAMILY_TABLE} {chain}" for chain in new_chains]
    lines += rules
    for collection, items in adds.items():
        lines += _element_lines("add", collection, items)
    count = sum(len(v) for v in deletes.values()) + sum(len(v) for v in adds.values())
    text = "\n".join(lines) + "\n" if lines else ""
    changes = None
    if text and not (flushed or new_chains or new_sets or deleted_sets or new_picks):
        changes = element_changes(deletes, adds)
    return NftRuleset(text, refs, len(set(flushed) | set(new_chains)), count, picks | frozenset(new_picks), changes)


def hairpin_refs(state: ProxyState, cfg: RenderConfig) -> HairpinRefs:
    """The hairpin counts of a whole state (what render_full leaves)."""
    refs = HairpinRefs()
    empty: tuple[Endpoint, ...] = ()
    for name, sp in state.services.items():
        refs.counts.update(service_rules(sp, state.endpoints.get(name, empty), cfg).hairpin)
    return refs


def is_our_chain(name: str) -> bool:
    return name.startswith(SERVICE_CHAIN_PREFIXES)

