"""The running agent's /metrics on :10250 (the cluster `make up` started) parses as Prometheus text;
it is read with the admin kubeconfig's client certificate, as the node server requires one."""
from __future__ import annotations

import os
import urllib.request

import pytest

from tests.e2e.cluster import node_server_ssl_context
from tests.integration.test_metrics_endpoints import AGENT_METRICS, _samples

pytestmark = pytest.mark.e2e


def test_agent_metrics_parse_with_sync_histogram_and_process_figures():
    context = node_server_ssl_context()      # :10250 wants a client certificate of the cluster CA
    try:
        with urllib.request.urlopen(AGENT_METRICS, timeout=5, context=context) as response:
            text = response.read().decode()
    except OSError as exc:
        if os.environ.get("SHIPMATE_TEST_STRICT"):
            raise
        pytest.skip(f"no agent serving {AGENT_METRICS}: {exc}")
    families, _ = _samples(text)
    assert families["kubelet_pod_worker_duration_seconds"].type == "histogram"
    assert families["process_resident_memory_bytes"].samples[0].value > 0
    assert families["process_cpu_seconds"].samples[0].value > 0
