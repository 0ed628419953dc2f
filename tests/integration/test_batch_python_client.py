"""The official Python client's Job flows (tests/e2e/test_batch_python_client.py: its e2e test_batch, sync and
aio) against a server of this branch."""
from __future__ import annotations

import pytest

pytest.importorskip("kubernetes", reason="the kubernetes Python client is not installed")

from tests.e2e.test_batch_python_client import (async_configuration, async_job_apis_flow,  # noqa: E402
                                                configuration, job_apis_flow)

pytestmark = pytest.mark.integration


def test_job_apis(module_server):
    job_apis_flow(configuration(module_server.kubeconfig))


async def test_job_apis_aio(module_server):
    pytest.importorskip("kubernetes.aio", reason="this kubernetes client has no aio package")
    await async_job_apis_flow(await async_configuration(module_server.kubeconfig))
