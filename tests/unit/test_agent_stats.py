"""The agent's resource figures: cgroup v1/v2 parsing and reading (fake trees), the CPU rate from two cumulative
samples, and the /stats/summary and /metrics/resource shapes."""
from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agent.stats.cgroups import (CgroupError, cgroup_paths, node_memory, parse_cpu_max, parse_flat_keyed,
                                 parse_meminfo, parse_proc_cgroup, parse_proc_stat_cpu, read_cpu_limit, read_usage,
                                 working_set)
from agent.stats.formats import resource_metrics, summary
from agent.stats.provider import ContainerSample, NodeSample, Snapshot, nano_cores
from agent.stats.cgroups import Usage

V1_PROC = """12:cpu,cpuacct:/k8s.io/abc
11:memory:/k8s.io/abc
1:name=systemd:/k8s.io/abc
0::/k8s.io/abc
"""
V2_PROC = "0::/kubepods/pod1/abc\n"


def _write(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


def test_proc_cgroup_v1_and_v2_paths():
    v1 = cgroup_paths(parse_proc_cgroup(V1_PROC), unified=False, root="/r")
    assert (v1.cpu_usage, v1.memory, v1.cpu_limit) == ("/r/cpu,cpuacct/k8s.io/abc", "/r/memory/k8s.io/abc",
                                                       "/r/cpu,cpuacct/k8s.io/abc")
    v2 = cgroup_paths(parse_proc_cgroup(V2_PROC), unified=True, root="/r")
    assert v2.cpu_usage == v2.memory == v2.cpu_limit == "/r/kubepods/pod1/abc" and v2.unified
    with pytest.raises(CgroupError):
        cgroup_paths(parse_proc_cgroup("0::/x\n"), unified=False)


def test_working_set_subtracts_inactive_file_never_below_zero():
    assert working_set(1000, {"inactive_file": 300}, unified=True) == 700
    assert working_set(1000, {"total_inactive_file": 300, "inactive_file": 900}, unified=False) == 700
    assert working_set(100, {"inactive_file": 300}, unified=True) == 0


def test_read_usage_v2(tmp_path):
    base = str(tmp_path / "pod" / "c")
    _write(f"{base}/cpu.stat", "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    _write(f"{base}/memory.current", "10485760\n")
    _write(f"{base}/memory.stat", "anon 4194304\nfile 6291456\ninactive_file 2097152\npgfault 7\npgmajfault 1\n")
    _write(f"{base}/cpu.max", "50000 100000\n")
    paths = cgroup_paths({"": "/pod/c"}, unified=True, root=str(tmp_path))
    usage = read_usage(paths)
    assert usage.cpu_ns == 2_500_000_000
    assert usage.working_set == 10485760 - 2097152 and usage.memory_usage == 10485760 and usage.rss == 4194304
    assert (usage.page_faults, usage.major_page_faults) == (7, 1)
    assert read_cpu_limit(paths) == (50000, 100000)


def test_read_usage_v1(tmp_path):
    root = str(tmp_path)
    _write(f"{root}/cpu,cpuacct/k8s.io/abc/cpuacct.usage", "123456789\n")
    _write(f"{root}/cpu,cpuacct/k8s.io/abc/cpu.cfs_quota_us", "-1\n")
    _write(f"{root}/cpu,cpuacct/k8s.io/abc/cpu.cfs_period_us", "100000\n")
    _write(f"{root}/memory/k8s.io/abc/memory.usage_in_bytes", "5000\n")
    _write(f"{root}/memory/k8s.io/abc/memory.stat", "cache 3000\ntotal_rss 1000\ntotal_inactive_file 1500\n")
    paths = cgroup_paths(parse_proc_cgroup(V1_PROC), unified=False, root=root)
    usage = read_usage(paths)
    assert (usage.cpu_ns, usage.working_set, usage.rss) == (123456789, 3500, 1000)
    assert read_cpu_limit(paths) == (None, 100000)
    os.remove(f"{root}/memory/k8s.io/abc/memory.usage_in_bytes")
    with pytest.raises(CgroupError):
        read_usage(paths)


def test_cpu_max_and_flat_keyed():
    assert parse_cpu_max("max 100000") == (None, 100000)
    assert parse_cpu_max("20000 50000\n") == (20000, 50000)
    assert parse_flat_keyed("a 1\nbad\nb x\nc 3") == {"a": 1, "c": 3}


def test_nano_cores_from_two_cumulative_samples():
    second = 1_000_000_000
    # half a core over 10 s: 5 s of CPU time
    assert nano_cores(0, 0, 5 * second, 10 * second) == 500_000_000
    assert nano_cores(1 * second, 100 * second, 3 * second, 101 * second) == 2_000_000_000   # two cores
    assert nano_cores(5, 10, 5, 20) == 0                                                     # idle
    assert nano_cores(10, 10, 20, 10) is None        # no time passed
    assert nano_cores(10 * second, 0, 1 * second, second) is None     # counter went back (a new container)


def test_node_memory_and_cpu_from_proc():
    meminfo = parse_meminfo("MemTotal:  1000 kB\nMemFree: 200 kB\nMemAvailable: 600 kB\nInactive(file): 300 kB\n")
    assert node_memory(meminfo) == (800 * 1024, 500 * 1024, 500 * 1024)
    # user nice system idle iowait irq softirq steal
    assert parse_proc_stat_cpu("cpu  100 0 50 1000 20 5 5 0 0 0\ncpu0 1 1 1 1\n", hz=100) == 160 * 10_000_000


def _snapshot() -> Snapshot:
    usage = Usage(cpu_ns=1_500_000_000, working_set=2 * 1024 * 1024, memory_usage=3 * 1024 * 1024, rss=1024)
    samples = [ContainerSample("c1", "app", "ns", "web", "uid-1", 1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                               usage),
               ContainerSample("c2", "side", "ns", "web", "uid-1", 1_700_000_000_000_000_000, 1_700_000_100_000_000_000,
                               usage)]
    node = NodeSample(1_700_000_100_000_000_000, 50_000_000_000, 4_000_000, 3_000_000, 1_000_000, 1_699_000_000_000_000_000)
    return Snapshot(node, samples, nano_cores={"c1": 250_000_000, "c2": 50_000_000}, node_nano_cores=900_000_000)


def test_summary_shape():
    document = summary("n1", _snapshot(), {"capacityBytes": 10}, only_cpu_and_memory=False)
    assert document["node"]["nodeName"] == "n1"
    assert document["node"]["cpu"] == {"time": "2023-11-14T22:15:00Z", "usageCoreNanoSeconds": 50_000_000_000,
                                       "usageNanoCores": 900_000_000}
    assert document["node"]["memory"]["workingSetBytes"] == 3_000_000 and "fs" in document["node"]
    [pod] = document["pods"]
    assert pod["podRef"] == {"name": "web", "namespace": "ns", "uid": "uid-1"}
    assert [c["name"] for c in pod["containers"]] == ["app", "side"]
    assert pod["cpu"]["usageNanoCores"] == 300_000_000 and pod["cpu"]["usageCoreNanoSeconds"] == 3_000_000_000
    assert pod["memory"]["workingSetBytes"] == 4 * 1024 * 1024
    assert "fs" not in summary("n1", _snapshot(), {"capacityBytes": 10}, only_cpu_and_memory=True)["node"]


def test_resource_metrics_parse_as_prometheus_text_with_timestamps():
    text = resource_metrics(_snapshot())
    families = {f.name: f for f in text_string_to_metric_families(text)}
    cpu = families["container_cpu_usage_seconds"]       # the parser drops the counter's _total from the name
    assert cpu.type == "counter"
    sample = next(s for s in cpu.samples if s.labels["container"] == "app")
    assert sample.labels == {"container": "app", "namespace": "ns", "pod": "web"}
    assert sample.value == 1.5 and sample.timestamp == 1_700_000_100
    assert families["node_memory_working_set_bytes"].samples[0].value == 3_000_000
    assert families["pod_cpu_usage_seconds"].samples[0].value == 3.0
    assert families["resource_scrape_error"].samples[0].value == 0
    assert '# HELP node_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the node in core-seconds' in text
