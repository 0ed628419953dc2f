"""Security tests reuse the integration fixtures (a private `shipmate server` per test)."""
from tests.integration.conftest import server  # noqa: F401 - the fixture, shared
