"""Fixtures of the security tests: the integration ones, shared (a private `shipmate server` per test)."""
from tests.integration.conftest import server

__all__ = ["server"]  # re-exported fixture
