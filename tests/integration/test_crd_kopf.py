"""A kopf operator against a `shipmate server` (kopf: $KOPF_PYTHON or `pip install kopf`): create/update/delete
handlers, status patches through /status, the kopf finalizer, adopted children garbage collected."""
import shutil

import pytest

from tests.crd_kopf_flow import kopf_python, run_operator_flow

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed"),
              pytest.mark.skipif(kopf_python() is None, reason="kopf is not installed (pip install kopf)")]


def test_kopf_operator_handles_its_custom_resources(server, tmp_path):
    def kubectl(*args, input=None, check=True):
        return server.kubectl(*args, input=input, check=check)
    run_operator_flow(kubectl, server.kubeconfig, "default", tmp_path, "kopf.example.com")
