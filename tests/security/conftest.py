"""Security tests reuse the integration fixtures (a private `shipmate server` per test or per module)."""
from tests.integration.conftest import module_server, server  # noqa: F401 - the fixtures, shared
