"""metrics.k8s.io in the API server: parsing a node's /metrics/resource, the rate between two scrapes (window,
restarts, counters going back), staleness, and the NodeMetrics/PodMetrics shapes metrics-server gives."""
from __future__ import annotations

from apiserver.http.metrics_api import node_metrics_object, pod_metrics_object
from apiserver.resource_metrics import (NodeScrape, Point, ResourceMetrics, cpu_quantity, format_window,
                                        memory_quantity, parse_resource_metrics, usage_between)

S = 1_000_000_000


def _text(cpu_seconds: float, ms: int, start: float = 1700000000.5) -> str:
    return f"""# HELP container_cpu_usage_seconds_total [STABLE] x
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{{container="app",namespace="ns",pod="web"}} {cpu_seconds} {ms}
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{{container="app",namespace="ns",pod="web"}} 1.2582912e+07 {ms}
# TYPE container_start_time_seconds gauge
container_start_time_seconds{{container="app",namespace="ns",pod="web"}} {start} {ms}
# TYPE node_cpu_usage_seconds_total counter
node_cpu_usage_seconds_total {cpu_seconds * 4} {ms}
# TYPE node_memory_working_set_bytes gauge
node_memory_working_set_bytes 1073741824 {ms}
# TYPE resource_scrape_error gauge
resource_scrape_error 0
"""


def test_parse_resource_metrics():
    scrape = parse_resource_metrics(_text(1.5, 1700000100000), at=5.0)
    point = scrape.containers[("ns", "web", "app")]
    assert point == Point(1700000100 * S, 1_500_000_000, 12582912, 1700000000500000000)
    assert scrape.node == Point(1700000100 * S, 6_000_000_000, 1073741824) and scrape.at == 5.0


def test_usage_between_two_points():
    a, b = Point(100 * S, 10 * S, 5, 7), Point(110 * S, 15 * S, 9, 7)
    usage = usage_between(a, b)
    assert (usage.cpu_nano, usage.window_ns, usage.memory, usage.timestamp_ns) == (500_000_000, 10 * S, 9, 110 * S)
    assert usage_between(b, a) is None                                   # older sample
    assert usage_between(a, Point(110 * S, 15 * S, 9, 8)) is None        # restarted: another start time
    assert usage_between(a, Point(110 * S, 1 * S, 9, 7)) is None         # counter went back


def test_formats_as_metrics_server():
    assert format_window(15 * S + 2_000_000) == "15.002s"
    assert format_window(60 * S + S // 2) == "1m0.5s"
    assert format_window(20 * S) == "20s"
    assert cpu_quantity(250_000_000) == "250m" and cpu_quantity(123_456_789) == "123456789n"
    assert cpu_quantity(0) == "0"
    assert memory_quantity(12582912) == "12Mi" and memory_quantity(1264640) == "1235Ki"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_figures_need_two_scrapes_and_go_stale():
    clock = _Clock()
    metrics = ResourceMetrics(api=None, resolution=10.0, clock=clock)
    metrics.record("n1", parse_resource_metrics(_text(1.0, 1700000100000), at=0.0))
    assert metrics.node_usage("n1") is None and metrics.pod_usage("n1", "ns", "web") == {}
    clock.now = 10.0
    metrics.record("n1", parse_resource_metrics(_text(3.0, 1700000110000), at=10.0))
    usage = metrics.pod_usage("n1", "ns", "web")["app"]
    assert usage.cpu_nano == 200_000_000 and usage.window_ns == 10 * S
    assert metrics.node_usage("n1").cpu_nano == 800_000_000
    assert metrics.pod_usage("n1", "ns", "other") == {}
    clock.now = 10.0 + metrics.stale_after + 0.1                          # no scrape since: stale
    assert metrics.node_usage("n1") is None and metrics.pod_usage("n1", "ns", "web") == {}


def test_a_restarted_container_waits_for_its_next_scrape():
    clock = _Clock()
    metrics = ResourceMetrics(api=None, resolution=10.0, clock=clock)
    metrics.record("n1", parse_resource_metrics(_text(9.0, 1700000100000), at=0.0))
    metrics.record("n1", parse_resource_metrics(_text(0.5, 1700000110000, start=1700000105.0), at=0.0))
    assert metrics.pod_usage("n1", "ns", "web") == {}


def test_objects_in_metrics_server_shape():
    usage = usage_between(Point(100 * S, 0, 0), Point(115 * S + 6_000_000, 3 * S, 2 * 1024 * 1024))
    node = node_metrics_object({"metadata": {"name": "n1", "labels": {"a": "b"}}}, usage)
    assert node["kind"] == "NodeMetrics" and node["apiVersion"] == "metrics.k8s.io/v1beta1"
    assert node["metadata"]["name"] == "n1" and node["metadata"]["labels"] == {"a": "b"}
    assert node["window"] == "15.006s" and node["timestamp"] == "1970-01-01T00:01:55Z"
    assert node["usage"] == {"cpu": "199920031n", "memory": "2Mi"}
    pod = {"metadata": {"name": "web", "namespace": "ns"}, "spec": {"containers": [{"name": "b"}, {"name": "a"}]}}
    document = pod_metrics_object(pod, {"a": usage, "b": usage})
    assert [c["name"] for c in document["containers"]] == ["b", "a"]
    assert document["metadata"]["namespace"] == "ns" and document["kind"] == "PodMetrics"


def test_scrape_keeps_two_per_node():
    metrics = ResourceMetrics(api=None)
    for at in range(5):
        metrics.record("n1", NodeScrape(float(at)))
    before, after = metrics._scrapes["n1"]
    assert (before.at, after.at) == (3.0, 4.0)


def test_a_fresh_container_has_figures_after_one_scrape_as_with_metrics_server():
    """metrics-server: a container started 10 s to one resolution before its sample counts from its start (no CPU
    then); younger, or older with no scrape before, it has no figures yet."""
    clock = _Clock()
    metrics = ResourceMetrics(api=None, resolution=15.0, clock=clock)
    metrics.record("n1", parse_resource_metrics(_text(2.0, 1700000112000, start=1700000100.0), at=0.0))
    usage = metrics.pod_usage("n1", "ns", "web")["app"]
    assert usage.cpu_nano == 166_666_666 and usage.window_ns == 12 * S       # 2 s of CPU over the 12 s since start
    assert metrics.node_usage("n1") is None                                  # nodes still need two scrapes
    metrics.record("n1", parse_resource_metrics(_text(0.1, 1700000115000, start=1700000110.0), at=0.0))
    assert metrics.pod_usage("n1", "ns", "web") == {}                        # 5 s old: too young
    fresh = ResourceMetrics(api=None, resolution=15.0, clock=clock)
    fresh.record("n1", parse_resource_metrics(_text(9.0, 1700000130000, start=1700000100.0), at=0.0))
    assert fresh.pod_usage("n1", "ns", "web") == {}                          # 30 s old, nothing scraped before
