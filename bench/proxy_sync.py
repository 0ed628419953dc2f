"""Proxy sync benchmark (issue 4): full sync and one-service change at 1k/5k/10k services.

For each size, in throwaway network namespaces:
  floor  = one bare `iptables-restore` (flushing mode, empty tables) of the same full ruleset:
           the fastest way iptables can load those rules;
  ours   = the agent's first full sync (trackers → render → restore transactions → jumps);
  change = one service's endpoint replaced → the sync that applies it, then the new DNAT rule
           is checked with `iptables -C`; its floor: a bare restore appending one rule to the
           same loaded table; plus a new service added (touches KUBE-SERVICES).
Prints one line per size and, last, the 10k full-sync ratio (targets: ≤ 1.3, change ≤ 100 ms).

    /opt/shipmate/venv/bin/python bench/proxy_sync.py [--sizes 1000,5000,10000] [--backend nft|legacy]
        [--python-iptables N]   also time reading the nat table with python-iptables vs iptables-save
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

from agent.proxy import chains
from agent.proxy.proxier import Proxier
from agent.proxy.render import RenderConfig, is_large_cluster, render_full
from netns.iptables import BACKENDS, Backend, Iptables, detect_backend
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


def loaded_proxier(backend: Backend, netns: str, n: int) -> Proxier:
    proxier = Proxier(Iptables(backend, netns), RenderConfig(cluster_cidr=CLUSTER_CIDR, node_name="node-a"))
    for i in range(n):
        proxier.on_service_add(service(i))
        proxier.on_endpoint_slice_update(endpoint_slice(i))
    proxier.on_services_synced()
    proxier.on_endpoint_slices_synced()
    return proxier


async def measure(backend: Backend, n: int) -> tuple[float, float, float, float, float]:
    with Netns("shipmate-bench-ours") as ours_ns:
        proxier = loaded_proxier(backend, ours_ns, n)
        started = time.perf_counter()
        if not await proxier.sync():
            raise SystemExit("full sync failed")
        ours = time.perf_counter() - started
        state = proxier.applied_state  # exactly what the full sync rendered

        # One service's endpoints change.
        target = n // 2
        proxier.on_endpoint_slice_update(endpoint_slice(target, subnet="10.250.9"))
        started = time.perf_counter()
        if not await proxier.sync():
            raise SystemExit("partial sync failed")
        change = time.perf_counter() - started
        name = f"ns{target % 100}/svc{target}:http"
        sep = chains.endpoint_chain(name, "tcp", "10.250.9.1:8080")
        comment = [] if is_large_cluster(state) else ["-m", "comment", "--comment", name]
        check = subprocess.run(["nsenter", f"--net=/var/run/netns/{ours_ns}", backend.iptables, "-t", "nat", "-C",
                                sep, *comment, "-m", "tcp", "-p", "tcp", "-j", "DNAT",
                                "--to-destination", "10.250.9.1:8080"])
        if check.returncode != 0:
            raise SystemExit(f"changed rule not present after partial sync ({sep})")

        # Floor for any change: a bare restore appending one rule to the loaded nat table.
        started = time.perf_counter()
        subprocess.run(["nsenter", f"--net=/var/run/netns/{ours_ns}", backend.restore, "--noflush"], check=True,
                       input=b"*nat\n-A KUBE-NODEPORTS -p tcp -m tcp --dport 1 -j RETURN\nCOMMIT\n")
        change_floor = time.perf_counter() - started

        # A new service (adds a KUBE-SERVICES rule).
        proxier.on_service_add(service(n))
        proxier.on_endpoint_slice_update(endpoint_slice(n))
        started = time.perf_counter()
        if not await proxier.sync():
            raise SystemExit("partial sync (new service) failed")
        added = time.perf_counter() - started

    text = render_full(state, proxier.config).transactions[0]
    with Netns("shipmate-bench-floor") as floor_ns:
        started = time.perf_counter()
        subprocess.run(["nsenter", f"--net=/var/run/netns/{floor_ns}", backend.restore],
                       input=text.encode(), check=True)
        floor = time.perf_counter() - started
    return ours, floor, change, change_floor, added


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
            proxier = loaded_proxier(backend, ns, n)
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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,5000,10000")
    parser.add_argument("--backend", choices=[b.name for b in BACKENDS])
    parser.add_argument("--python-iptables", type=int, metavar="N", default=0)
    args = parser.parse_args()
    backend = next((b for b in BACKENDS if b.name == args.backend), None) or await detect_backend()
    if args.python_iptables:
        await measure_python_iptables(args.python_iptables)
        return
    ratio = None
    series: dict[str, list[float]] = {"services": [], "full sync (s)": [], "floor: bare restore (s)": [],
                                      "one-service change (s)": [], "change floor (s)": []}
    for n in (int(size) for size in args.sizes.split(",")):
        ours, floor, change, change_floor, added = await measure(backend, n)
        ratio = ours / floor
        for name, value in zip(series, (n, ours, floor, change, change_floor)):
            series[name].append(value)
        print(f"{backend.name} {n} services x {ENDPOINTS_PER_SERVICE} endpoints: full sync {ours:.2f}s, "
              f"floor {floor:.2f}s, ratio {ratio:.2f}; one-service endpoint change {change * 1000:.0f} ms "
              f"(bare one-rule restore {change_floor * 1000:.0f} ms); "
              f"new service {added * 1000:.0f} ms", flush=True)
    write_result("proxy_sync", [
        Figure(f"proxy full sync, {n} services ({backend.name})", ours, floor, "s", "≤ 1.3"),
        Figure(f"one-service change, {n} services", change * 1000, change_floor * 1000, "ms", "≤ 100 ms"),
    ], series=series)
    print(f"{n} full sync ratio: {ratio:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
