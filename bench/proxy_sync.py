"""Proxy sync benchmark (issues 4 and 20): full sync, one-service change and packet path, per proxy mode.

For each mode (nftables, iptables) and size (services × 5 endpoints), in throwaway network namespaces:
  floor  = nftables: one bare `nft -f` of the same full ruleset into an empty namespace; iptables: one
           bare `iptables-restore` (flushing mode, empty tables) of the same rules;
  ours   = the agent's first full sync (trackers → render → transactions; nftables: the table is new, so
           the endpoint maps' and hairpin set's elements go as one netlink batch after the rules);
  replace = nftables: full syncs over the table already there (one transaction replacing it whole; the render
           reuses the last such sync's text of the service ports unchanged since, so the first round renders
           everything and the later ones nothing), against a bare `nft -f` of the same ruleset over the same
           loaded table, as many rounds as the first syncs, alternating; the median ratio is the figure;
  change = one service's endpoints replaced, end to end: from the EndpointSlice event (the informer
           callback) until the sync that applies it returns (the rules are then in the kernel; checked
           by reading them back); its floor: nftables, a bare `nft -f` of the same partial transaction;
           iptables, a bare restore appending one rule to the same loaded table; plus a new service;
  packet path (largest size) = a real pod (veth, TCP server) behind the service sorted last (worst case
           for iptables' linear KUBE-SERVICES): median TCP connect time through its cluster IP from the
           node, over --connects connections, each mode against the same topology.
Targets (10k services × 5 endpoints, nftables mode): one-service change ≤ 20 ms end to end, full sync
≤ 1.0 × the bare `nft -f`, packet path no worse than the iptables mode (connect time ratio ≤ 1.0).
Prints one line per mode and size and, last, the nftables one-service change in ms.

    /opt/shipmate/venv/bin/python bench/proxy_sync.py [--sizes 1000,10000] [--modes nftables,iptables]
        [--backend nft|legacy] [--repeat 5] [--connects 2000]
        [--python-iptables N]   also time reading the nat table with python-iptables vs iptables-save
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

from agent.proxy import chains
from agent.proxy import nft as nft_render
from agent.proxy.proxier import NftProxier, Proxier
from agent.proxy.render import RenderConfig, is_large_cluster, render_full
from netns.iptables import BACKENDS, Backend, Iptables, detect_backend
from netns.nftables import Nft
from result import Figure, write_result

CLUSTER_CIDR = "10.244.0.0/16"
ENDPOINTS_PER_SERVICE = 5


def service(i: int) -> dict:
    return {"metadata": {"namespace": f"ns{i % 100}", "name": f"svc{i}"},
            "spec": {"type": "ClusterIP", "clusterIP": f"10.96.{i // 250}.{i % 250 + 1}",
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(i: int, subnet: str | None = None) -> dict:
    """Endpoints of service i: unique pod IPs, or `subnet`.1-5 when given."""
    if subnet:
        addresses = [f"{subnet}.{j + 1}" for j in range(ENDPOINTS_PER_SERVICE)]
    else:
        ids = range(i * ENDPOINTS_PER_SERVICE, (i + 1) * ENDPOINTS_PER_SERVICE)
        addresses = [f"10.{244 + k // 62500}.{k // 250 % 250}.{k % 250 + 1}" for k in ids]
    return {"metadata": {"namespace": f"ns{i % 100}", "name": f"svc{i}-abcde",
                         "labels": {"kubernetes.io/service-name": f"svc{i}"}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [a], "conditions": {"ready": True}, "nodeName": "node-a"}
                          for a in addresses]}


class Netns:
    def __init__(self, name: str):
        self.name = name

    def __enter__(self) -> str:
        subprocess.run(["ip", "netns", "del", self.name], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        return self.name

    def __exit__(self, *exc: object) -> None:
        subprocess.run(["ip", "netns", "del", self.name], check=True)


PROBE_IP, PROBE_NODE_IP, PROBE_POD_IP = "10.97.255.1", "10.250.200.1", "10.250.200.2"
PROBE_SERVER = """
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080))
s.listen(512)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.close()
"""
PROBE_CLIENT = """
import socket, statistics, sys, time
ip, count = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(count):
    t = time.perf_counter()
    c = socket.create_connection((ip, 80), timeout=5)
    times.append(time.perf_counter() - t)
    c.close()
print(statistics.median(times) * 1e6)
"""


def probe_service() -> dict:
    """Sorted after every other service (namespace "zz"): the last rule of iptables' KUBE-SERVICES."""
    return {"metadata": {"namespace": "zz", "name": "probe"},
            "spec": {"type": "ClusterIP", "clusterIP": PROBE_IP,
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def probe_slice() -> dict:
    return {"metadata": {"namespace": "zz", "name": "probe-abcde", "labels": {"kubernetes.io/service-name": "probe"}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [PROBE_POD_IP], "conditions": {"ready": True}, "nodeName": "node-a"}]}


def make_proxier(mode: str, backend: Backend, netns: str) -> Proxier:
    config = RenderConfig(cluster_cidr=CLUSTER_CIDR, node_name="node-a")
    if mode == "nftables":
        return NftProxier(Nft(netns), config, min_sync_period=0)
    return Proxier(Iptables(backend, netns), config, min_sync_period=0)


def loaded_proxier(mode: str, backend: Backend, netns: str, n: int) -> Proxier:
    proxier = make_proxier(mode, backend, netns)
    for i in range(n):
        proxier.on_service_add(service(i))
        proxier.on_endpoint_slice_update(endpoint_slice(i))
    proxier.on_service_add(probe_service())
    proxier.on_endpoint_slice_update(probe_slice())
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    return proxier


def enter(netns: str) -> list[str]:
    return ["nsenter", f"--net=/var/run/netns/{netns}"]


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def probe_pod(node_ns: str, pod_ns: str) -> subprocess.Popen:
    """A pod netns on a veth behind the node netns, with a TCP server on 8080 (the probe endpoint)."""
    sh("ip", "-n", node_ns, "link", "add", "vprobe", "type", "veth", "peer", "name", "eth0", "netns", pod_ns)
    sh("ip", "-n", node_ns, "addr", "add", f"{PROBE_NODE_IP}/24", "dev", "vprobe")
    sh("ip", "-n", pod_ns, "addr", "add", f"{PROBE_POD_IP}/24", "dev", "eth0")
    for ns, dev in ((node_ns, "vprobe"), (node_ns, "lo"), (pod_ns, "eth0"), (pod_ns, "lo")):
        sh("ip", "-n", ns, "link", "set", dev, "up")
    sh("ip", "-n", pod_ns, "route", "add", "default", "via", PROBE_NODE_IP)
    sh("ip", "-n", node_ns, "route", "add", "10.96.0.0/12", "dev", "vprobe")
    server = subprocess.Popen([*enter(pod_ns), sys.executable, "-c", PROBE_SERVER], stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "ready"
    return server


def connect_time_us(node_ns: str, connects: int) -> float:
    out = subprocess.run([*enter(node_ns), sys.executable, "-c", PROBE_CLIENT, PROBE_IP, str(connects)],
                         capture_output=True, text=True, check=True, timeout=300)
    return float(out.stdout.strip())


def rules_contain(mode: str, backend: Backend, netns: str, proxier: Proxier, name: str, address: str) -> bool:
    if mode == "nftables":
        # The endpoints are elements of the shared endpoint map: ask the kernel for this service's.
        sp = next(sp for key, sp in proxier.applied_state.services.items() if str(key) == name)
        count = len(proxier.applied_state.endpoints[sp.name])
        keys = ", ".join(f"{sp.cluster_ip} . {sp.port} . {bucket}" for bucket in range(count))
        out = subprocess.run([*enter(netns), "nft", "get", "element", "ip", nft_render.TABLE,
                              nft_render.endpoint_maps(False, "tcp")[0], f"{{ {keys} }}"],
                             capture_output=True, text=True)
        return address.replace(":", " . ") in out.stdout
    sep = chains.endpoint_chain(name, "tcp", address)
    comment = [] if is_large_cluster(proxier.applied_state) else ["-m", "comment", "--comment", name]
    return subprocess.run([*enter(netns), backend.iptables, "-t", "nat", "-C", sep, *comment, "-m", "tcp", "-p", "tcp",
                           "-j", "DNAT", "--to-destination", address]).returncode == 0


@dataclass
class Measured:
    full: list[float]
    floor: list[float]
    change: list[float]
    change_floor: list[float]
    added: float
    connect_us: float | None = None
    change_netlink_floor: list[float] = field(default_factory=list)
    replace: list[float] = field(default_factory=list)         # full syncs over the table already there
    replace_floor: list[float] = field(default_factory=list)   # bare `nft -f` of the same over the same table

    @property
    def replace_ratio(self) -> float:
        return statistics.median(ours / floor for ours, floor in zip(self.replace, self.replace_floor))

    @property
    def ratios(self) -> list[float]:
        """Per round: our full sync over the bare load measured next to it."""
        return [ours / floor for ours, floor in zip(self.full, self.floor)]


def bare_load(mode: str, backend: Backend, text: str, over_itself: bool = False) -> float:
    """The floor: the bare tool loading the same ruleset into an empty namespace (`over_itself`: into one
    that already holds it, as a full sync replacing the table)."""
    tool = ["nft", "-f", "-"] if mode == "nftables" else [backend.restore]
    with Netns("shipmate-bench-floor") as floor_ns:
        if over_itself:
            subprocess.run([*enter(floor_ns), *tool], input=text.encode(), check=True)
        started = time.perf_counter()
        subprocess.run([*enter(floor_ns), *tool], input=text.encode(), check=True)
        return time.perf_counter() - started


async def measure(mode: str, backend: Backend, n: int, repeat: int, full_repeat: int, connects: int) -> Measured:
    """Rounds of (our full sync, the bare load of the same ruleset), the order alternating from the
    second round on so that a drift of the machine's load favours neither; the last round also measures
    the changes and the packet path."""
    result = Measured([], [], [], [], 0.0)
    text = None
    for round_ in range(full_repeat):
        floor_first = text is not None and round_ % 2 == 1
        if floor_first:
            result.floor.append(bare_load(mode, backend, text))
        with Netns("shipmate-bench-ours") as ours_ns, Netns("shipmate-bench-pod") as pod_ns:
            server = probe_pod(ours_ns, pod_ns)
            try:
                proxier = loaded_proxier(mode, backend, ours_ns, n)
                started = time.perf_counter()
                if not await proxier.sync():
                    raise SystemExit("full sync failed")
                result.full.append(time.perf_counter() - started)
                state = proxier.applied_state
                if round_ == full_repeat - 1:
                    await measure_changes(mode, backend, ours_ns, proxier, n, repeat, result)
                    if connects:
                        result.connect_us = connect_time_us(ours_ns, connects)
                    if mode == "nftables":      # the periodic full sync: the table is there, replaced whole
                        await measure_replace(proxier, backend, full_repeat, result)
            finally:
                server.kill()
                server.wait()
        if mode == "nftables":
            text = nft_render.render_full(state, proxier.config).text
        else:
            text = render_full(state, proxier.config).transactions[0]
        if not floor_first:
            result.floor.append(bare_load(mode, backend, text))
    return result


async def measure_replace(proxier: Proxier, backend: Backend, rounds: int, result: Measured) -> None:
    """Rounds of (our full sync over the table already there, a bare `nft -f` of the same ruleset over
    the same loaded table), the order alternating as the first syncs'."""
    text = nft_render.render_full(proxier.applied_state, proxier.config).text
    for round_ in range(rounds):
        if round_ % 2 == 1:
            result.replace_floor.append(bare_load("nftables", backend, text, over_itself=True))
        proxier._need_full_sync = True
        started = time.perf_counter()
        if not await proxier.sync():
            raise SystemExit("full sync over the existing table failed")
        result.replace.append(time.perf_counter() - started)
        if round_ % 2 == 0:
            result.replace_floor.append(bare_load("nftables", backend, text, over_itself=True))


async def measure_changes(mode: str, backend: Backend, netns: str, proxier: Proxier, n: int, repeat: int,
                          result: Measured) -> None:
    target = n // 2
    name = f"ns{target % 100}/svc{target}:http"
    for i in range(repeat):
        subnet = f"10.250.{9 + i % 2}"
        before = proxier.applied_state
        started = time.perf_counter()
        proxier.on_endpoint_slice_update(endpoint_slice(target, subnet=subnet))   # the informer's callback
        if not await proxier.sync():
            raise SystemExit("partial sync failed")
        result.change.append(time.perf_counter() - started)
        after = proxier.applied_state
        changed = {key for key in after.services if str(key) == name}
        if not rules_contain(mode, backend, netns, proxier, name, f"{subnet}.1:8080"):
            raise SystemExit(f"changed rule not in the kernel after the partial sync ({name})")
        if mode != "nftables":
            # The floor of a change: a bare restore appending one rule to the same loaded table.
            started = time.perf_counter()
            subprocess.run([*enter(netns), backend.restore, "--noflush"], check=True,
                           input=b"*nat\n-A KUBE-NODEPORTS -p tcp -m tcp --dport 1 -j RETURN\nCOMMIT\n")
            result.change_floor.append(time.perf_counter() - started)
            continue
        # The floors of a change: the same transaction by a bare `nft -f`, and the same elements as a bare
        # netlink batch (no trackers, no render), each onto the same kernel state (ours undone, untimed).
        undo = nft_render.render_partial(after, before, changed, proxier.config, proxier._hairpin).text
        text, changes = proxier.last_text, proxier.last_changes
        subprocess.run([*enter(netns), "nft", "-f", "-"], check=True, input=undo.encode())
        started = time.perf_counter()
        subprocess.run([*enter(netns), "nft", "-f", "-"], check=True, input=text.encode())
        result.change_floor.append(time.perf_counter() - started)
        if changes is not None and proxier.nft.elements_by_netlink:
            subprocess.run([*enter(netns), "nft", "-f", "-"], check=True, input=undo.encode())
            started = time.perf_counter()
            await proxier.nft.apply_elements("ip", nft_render.TABLE, changes, text)
            result.change_netlink_floor.append(time.perf_counter() - started)
    # A new service.
    started = time.perf_counter()
    proxier.on_service_add(service(n))
    proxier.on_endpoint_slice_update(endpoint_slice(n))
    if not await proxier.sync():
        raise SystemExit("partial sync (new service) failed")
    result.added = time.perf_counter() - started


PYTHON_IPTABLES_READ = """
import time, iptc
t = time.perf_counter()
table = iptc.Table(iptc.Table.NAT)
table.refresh()
rules = sum(len(chain.rules) for chain in table.chains)
print(rules, time.perf_counter() - t)
"""


async def measure_python_iptables(n: int) -> None:
    """Reading the nat table: python-iptables (libiptc) vs iptables-save, on both backends."""
    for backend in BACKENDS:
        with Netns("shipmate-bench-read") as ns:
            proxier = loaded_proxier("iptables", backend, ns, n)
            await proxier.sync()
            enter = ["nsenter", f"--net=/var/run/netns/{ns}"]
            started = time.perf_counter()
            saved = subprocess.run([*enter, backend.save, "-t", "nat"], capture_output=True, check=True).stdout
            save_seconds = time.perf_counter() - started
            save_rules = sum(1 for line in saved.splitlines() if line.startswith(b"-A"))
            out = subprocess.run([*enter, sys.executable, "-c", PYTHON_IPTABLES_READ],
                                 capture_output=True, text=True)
            if out.returncode != 0:
                iptc_result = f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}"
            else:
                iptc_rules, iptc_seconds = out.stdout.split()
                iptc_result = f"{iptc_rules} rules in {float(iptc_seconds):.3f}s"
            print(f"read nat at {n} services, {backend.name} tables: {backend.save} {save_rules} rules in "
                  f"{save_seconds:.3f}s; python-iptables {iptc_result}", flush=True)


def _ms(values: list[float]) -> str:
    ordered = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ordered):.1f} ms (min {ordered[0]:.1f}, max {ordered[-1]:.1f}, n={len(ordered)})"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--modes", default="nftables,iptables")
    parser.add_argument("--backend", choices=[b.name for b in BACKENDS])
    parser.add_argument("--repeat", type=int, default=7, help="one-service changes per size")
    parser.add_argument("--full-repeat", type=int, default=5, help="full syncs (and floors) per size")
    parser.add_argument("--connects", type=int, default=2000, help="TCP connects for the packet path (largest size)")
    parser.add_argument("--python-iptables", type=int, metavar="N", default=0)
    args = parser.parse_args()
    backend = next((b for b in BACKENDS if b.name == args.backend), None) or await detect_backend()
    if args.python_iptables:
        await measure_python_iptables(args.python_iptables)
        return 0
    sizes = [int(size) for size in args.sizes.split(",")]
    modes = [m for m in args.modes.split(",") if m]
    series: dict[str, list[float]] = {"services": sizes}
    results: dict[tuple[str, int], Measured] = {}
    for mode in modes:
        for n in sizes:
            m = await measure(mode, backend, n, args.repeat, args.full_repeat, args.connects if n == sizes[-1] else 0)
            results[(mode, n)] = m
            label = mode if mode == "nftables" else f"iptables ({backend.name})"
            series.setdefault(f"{label} full sync (s)", []).append(statistics.median(m.full))
            series.setdefault(f"{label} floor (s)", []).append(statistics.median(m.floor))
            print(f"{label} {n} services x {ENDPOINTS_PER_SERVICE} endpoints: full sync "
                  f"{', '.join(f'{v:.2f}' for v in m.full)} s, floor {', '.join(f'{v:.2f}' for v in m.floor)} s, "
                  f"ratio per round {', '.join(f'{r:.2f}' for r in m.ratios)} (median {statistics.median(m.ratios):.2f}); "
                  f"one-service change {_ms(m.change)}; its floor {_ms(m.change_floor)}"
                  + (f", as a bare netlink batch {_ms(m.change_netlink_floor)}" if m.change_netlink_floor else "")
                  + f"; new service {m.added * 1000:.0f} ms"
                  + (f"; full sync over the table already there {', '.join(f'{v:.2f}' for v in m.replace)} s, "
                     f"its bare nft -f {', '.join(f'{v:.2f}' for v in m.replace_floor)} s (median ratio "
                     f"{m.replace_ratio:.2f})" if m.replace else "")
                  + (f"; connect via cluster IP {m.connect_us:.0f} µs" if m.connect_us else ""), flush=True)
    n = sizes[-1]
    figures, notes = [], []
    nft, ipt = results.get(("nftables", n)), results.get(("iptables", n))
    for mode, m in (("nftables", nft), ("iptables", ipt)):
        if m is None:
            continue
        label = mode if mode == "nftables" else f"iptables ({backend.name})"
        bare = "bare nft -f" if mode == "nftables" else "bare iptables-restore"
        figures.append(Figure(f"{label}: full sync, {n} services", statistics.median(m.full),
                              statistics.median(m.floor), "s", "≤ 1.0" if mode == "nftables" else "",
                              ratio=statistics.median(m.ratios), baseline_label=bare))
        figures.append(Figure(f"{label}: one-service change end to end, {n} services",
                              statistics.median(m.change) * 1000, statistics.median(m.change_floor) * 1000, "ms",
                              "≤ 20 ms" if mode == "nftables" else "", baseline_label=f"{bare} of the change"))
        figures.append(Figure(f"{label}: new service, {n} services", m.added * 1000, None, "ms",
                              baseline_label="—"))
        if m.replace:
            figures.append(Figure(f"{label}: full sync over the table already there, {n} services",
                                  statistics.median(m.replace), statistics.median(m.replace_floor), "s", "≤ 1.0",
                                  ratio=m.replace_ratio, baseline_label="bare nft -f over the same table"))
        if m.change_netlink_floor:
            figures.append(Figure(f"{label}: one-service change end to end, {n} services, against the bare "
                                  "netlink batch of its elements", statistics.median(m.change) * 1000,
                                  statistics.median(m.change_netlink_floor) * 1000, "ms",
                                  baseline_label="bare netlink batch"))
        series[f"{label} one-service change (ms)"] = [v * 1000 for v in m.change]
        notes.append(f"{label}, {n} services: full syncs {', '.join(f'{v:.2f}' for v in m.full)} s against bare "
                     f"loads {', '.join(f'{v:.2f}' for v in m.floor)} s (per-round ratios "
                     f"{', '.join(f'{r:.2f}' for r in m.ratios)}, order alternating); one-service change "
                     f"{_ms(m.change)}, its bare floor {_ms(m.change_floor)}"
                     + (f", the bare netlink batch {_ms(m.change_netlink_floor)}" if m.change_netlink_floor else "")
                     + f"; new service {m.added * 1000:.0f} ms.")
    if nft and ipt and nft.connect_us and ipt.connect_us:
        figures.append(Figure(f"packet path: TCP connect via the last service's cluster IP, {n} services "
                              f"(nftables vs iptables)", nft.connect_us, ipt.connect_us, "µs", "≤ 1.0",
                              baseline_label=f"iptables {ipt.connect_us:.0f} µs"))
    write_result("proxy_sync", figures, series=series,
                 notes="\n\n".join(notes) + "\n\nUpstream's anchor: kube-proxy's nftables mode adds a service at "
                       "10k services in about 141 ms.")
    if nft:
        print(f"nftables one-service change at {n} services, end to end: {statistics.median(nft.change) * 1000:.1f} ms"
              f" (target ≤ 20 ms; bare nft -f of the same transaction {statistics.median(nft.change_floor) * 1000:.1f} ms)")
        if ipt and nft.connect_us and ipt.connect_us:
            print(f"packet path at {n} services: TCP connect via cluster IP nftables {nft.connect_us:.0f} µs, "
                  f"iptables {ipt.connect_us:.0f} µs, ratio {nft.connect_us / ipt.connect_us:.2f} (target ≤ 1.0)")
        print(f"nftables {n} full sync ratio against a bare nft -f of the same ruleset, measured in this run: "
              f"{statistics.median(nft.ratios):.2f} (median of {len(nft.ratios)} rounds; ours "
              f"{statistics.median(nft.full):.3f} s, floor {statistics.median(nft.floor):.3f} s; target ≤ 1.0)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
