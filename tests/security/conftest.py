"""Fixtures of the security tests: the integration ones, shared (a private `shipmate server` per test)."""
from tests.integration.conftest import server  # noqa: F401 - re-exported fixture
