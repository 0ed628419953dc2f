"""/metrics of a real `shipmate server` parses with prometheus_client's parser."""
from __future__ import annotations

import os

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_apiserver_kubectl import Server

pytestmark = pytest.mark.integration
AGENT_METRICS = os.environ.get("SHIPMATE_AGENT_METRICS", "https://127.0.0.1:10250/metrics")


def _samples(text: str) -> tuple[dict, dict]:
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    return families, samples


def test_server_metrics_parse_and_count_requests_and_objects(tmp_path):
    server = Server(tmp_path)
    server.start()
    try:
        assert server.request("POST", "/api/v1/namespaces", {"metadata": {"name": "k-metrics"}})[0] == 201
        for i in range(3):
            status, _ = server.request("POST", "/api/v1/namespaces/k-metrics/configmaps",
                                       {"metadata": {"name": f"c{i}"}, "data": {"k": "v"}})
            assert status == 201
        assert server.request("GET", "/api/v1/namespaces/k-metrics/configmaps/absent")[0] == 404
        families, samples = _samples(server.request("GET", "/metrics", raw=True))
    finally:
        server.stop()
    common = dict(dry_run="", group="", version="v1", resource="configmaps", subresource="", component="apiserver")
    assert samples[("apiserver_request_total", tuple(sorted(dict(verb="POST", scope="namespace", code="201",
                                                                 **common).items())))] == 3
    assert samples[("apiserver_request_total", tuple(sorted(dict(verb="GET", scope="resource", code="404",
                                                                 **common).items())))] == 1
    assert families["apiserver_request_duration_seconds"].type == "histogram"
    assert samples[("apiserver_storage_objects", (("resource", "configmaps"),))] >= 3
    assert samples[("apiserver_storage_objects", (("resource", "namespaces"),))] >= 4  # default, kube-*, ours
    assert families["process_resident_memory_bytes"].samples[0].value > 0
