"""Fixtures of the security tests: the integration tests' own (one copy of each helper)."""
from __future__ import annotations

from tests.integration.conftest import server  # noqa: F401 - a private `shipmate server` per test
