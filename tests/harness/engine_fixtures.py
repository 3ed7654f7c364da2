"""Pytest fixtures for tests that need a real Docker engine (marker `docker`)."""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Iterator

import pytest

from harness.engine import Engine, EngineStartError, start_engine
from harness.images import ensure_images, local_image_map
from harness.registry import Registry, RegistryStartError, start_registry


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[Engine]:
    """A private dockerd for the whole session: `.client`, `.base_url`, `.env`."""
    if shutil.which("dockerd") is None:
        pytest.skip("dockerd not found: run scripts/install-test-deps.sh")
    try:
        engine = start_engine()
    except EngineStartError as exc:
        pytest.fail(f"the test Docker engine did not start: {exc}")
    for note in engine.notes:
        warnings.warn(note, stacklevel=1)

    yield engine

    engine.stop()


@pytest.fixture(scope="session")
def local_images(docker_engine: Engine) -> dict[str, str]:
    """Service name → local image reference, building missing images first."""
    ensure_images(docker_engine.client)
    return local_image_map()


@pytest.fixture(scope="session")
def local_registry(
    docker_engine: Engine, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    """A docker-registry on 127.0.0.1:<free port> that the engine can push to."""
    try:
        registry = start_registry(tmp_path_factory.mktemp("registry"))
    except RegistryStartError as exc:
        pytest.fail(str(exc))

    yield registry

    registry.stop()
