"""Fixtures the integration tests share."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.integration.test_apiserver_kubectl import Server

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "hack"))
import build_images  # noqa: E402  (hack/ is scripts, not a package)


@pytest.fixture
def server(tmp_path):
    """A real `shipmate server` of the test's own, on a spare port with a temporary data dir."""
    srv = Server(tmp_path)
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """One real `shipmate server` shared by a module's tests (each uses names of its own)."""
    srv = Server(tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def spare_image(local_registry: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image no pod uses, pushed to the local registry by this fixture (builds are reproducible: the
    same digest every time, so a second push changes nothing)."""
    image = build_images.build_image(
        "shipmate/spare:1", build_images.base_files() + [build_images.file("/etc/spare", "unused by any pod\n")],
        build_images.ImageConfig(cmd=["sh"]), tmp_path_factory.mktemp("spare-image"))
    build_images.push_image(image, local_registry)
    return f"{local_registry}/{image.name}"
