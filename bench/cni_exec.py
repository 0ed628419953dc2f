"""Exec time of the installed shipmate-cni plugin, per path, against a `/bin/true` floor.

Runs as root: creates its own node netns (CNIService subprocess inside it) and pod netns, runs
ADD then DEL per pod the way containerd does (a fresh process each, via `nsenter --net=NODE`).
Prints medians in ms; the last line is the headline figure (ADD through the agent vs the floor).

    /opt/shipmate/venv/bin/python bench/cni_exec.py [--pods 15]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from netns.install import CONFLIST_NAME, install_cni  # noqa: E402
from result import Figure, write_result  # noqa: E402

PREFIX = "smbench-"


def timed(argv: list[str], env: dict[str, str] | None = None, stdin: str = "") -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, input=stdin.encode(), capture_output=True, timeout=60)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stdout!r} {done.stderr!r}")
    return elapsed


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def netns_add(name: str) -> str:
    subprocess.run(["ip", "netns", "add", name], check=True)
    return f"/var/run/netns/{name}"


def remove_bench_netns() -> None:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        if line.startswith(PREFIX):
            subprocess.run(["ip", "netns", "del", line.split()[0]], check=False)


def measure_path(node: str, plugin: Path, conf: str, pods: int, label: str) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"ADD": [], "DEL": []}
    for n in range(pods):
        pod = netns_add(f"{PREFIX}{label}{n}")
        for command in ("ADD", "DEL"):
            env = {"CNI_COMMAND": command, "CNI_CONTAINERID": f"bench-{label}-{n}", "CNI_NETNS": pod,
                   "CNI_IFNAME": "eth0", "CNI_PATH": str(plugin.parent), "PATH": os.environ["PATH"]}
            samples[command].append(timed(["nsenter", f"--net={node}", str(plugin)], env, conf))
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=15)
    args = parser.parse_args()
    remove_bench_netns()
    tmp = Path(tempfile.mkdtemp(prefix="cni-bench-"))
    socket_path, ipam_dir = str(tmp / "cni.sock"), str(tmp / "ipam")
    install_cni("10.251.0.0/24", str(tmp / "bin"), str(tmp / "net.d"), socket_path=socket_path,
                ipam_dir=ipam_dir, mtu=1400)
    conflist = json.loads((tmp / "net.d" / CONFLIST_NAME).read_text())
    conf = json.dumps({**conflist["plugins"][0], "name": conflist["name"], "cniVersion": conflist["cniVersion"]})
    plugin = tmp / "bin" / "shipmate-cni"
    node = netns_add(f"{PREFIX}node")
    service = None
    try:
        floor = [timed(["nsenter", f"--net={node}", "/bin/true"]) for _ in range(args.pods)]
        bare_python = [timed(["nsenter", f"--net={node}", sys.executable, "-I", "-S", "-c", "pass"])
                       for _ in range(args.pods)]
        service = subprocess.Popen(
            ["nsenter", f"--net={node}", sys.executable, "-m", "netns.service", "--socket", socket_path,
             "--state-dir", ipam_dir], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 15
        while not os.path.exists(socket_path):
            if time.monotonic() > deadline or service.poll() is not None:
                raise RuntimeError("CNI service did not start")
            time.sleep(0.05)
        # VERSION does no netlink work: the plugin's own start + one round trip to the agent
        version = [timed(["nsenter", f"--net={node}", str(plugin)], {"CNI_COMMAND": "VERSION"},
                         '{"cniVersion":"1.0.0"}') for _ in range(args.pods)]
        agent = measure_path(node, plugin, conf, args.pods, "a")
        service.terminate()
        service.wait(timeout=10)
        service = None
        fallback = measure_path(node, plugin, conf, args.pods, "f")
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=10)
        remove_bench_netns()
    base = median_ms(floor)
    print(f"floor   nsenter+/bin/true       {base:7.1f} ms")
    print(f"bare python -I -S               {median_ms(bare_python):7.1f} ms  ({median_ms(bare_python) / base:.1f}x)")
    print(f"VERSION via agent (median of {len(version)}) {median_ms(version):7.1f} ms  ({median_ms(version) / base:.1f}x)")
    for label, samples in (("agent", agent), ("fallback", fallback)):
        for command in ("ADD", "DEL"):
            ms = median_ms(samples[command])
            print(f"{command:<7} {label:<8} (median of {len(samples[command])}) {ms:7.1f} ms  ({ms / base:.1f}x)")
    add_agent = median_ms(agent["ADD"])
    print(f"shipmate-cni ADD via agent: {add_agent:.1f} ms = {add_agent / base:.1f}x nsenter+/bin/true "
          f"(in-process fallback {median_ms(fallback['ADD']):.1f} ms)")
    write_result("cni_exec", [
        Figure("CNI ADD via the agent", add_agent, base, "ms", baseline_label="nsenter + /bin/true"),
        Figure("CNI DEL via the agent", median_ms(agent["DEL"]), base, "ms", baseline_label="nsenter + /bin/true"),
        Figure("CNI ADD, in-process fallback", median_ms(fallback["ADD"]), base, "ms",
               baseline_label="nsenter + /bin/true"),
    ])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
