"""Fixtures the integration tests share."""
from __future__ import annotations

import pytest

from tests.integration.test_apiserver_kubectl import Server


@pytest.fixture
def server(tmp_path):
    """A real `shipmate server` of the test's own, on a spare port with a temporary data dir."""
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()
