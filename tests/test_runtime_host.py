"""What `up` checks and prepares on the host before the engine is asked anything."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from iotstack.errors import ConfigError, RuntimeFailure
from iotstack.render import render_stack
from iotstack.runtime.mounts import Owner, generated_files, prepare_bind_mounts
from iotstack.runtime.project import load_project
from iotstack.runtime.start import check_ports_free
from iotstack.scaffold import init_stack

NODE_RED = Owner(1000, 1000)
MOSQUITTO = Owner(1883, 1883)


@pytest.fixture
def minimal_stack(tmp_path: Path) -> Path:
    init_stack(tmp_path, variant="minimal", backend="victoriametrics")
    render_stack(tmp_path)
    return tmp_path


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_c02_bind_mounts_belong_to_the_user_the_image_runs_as(
    minimal_stack: Path,
) -> None:
    project = load_project(minimal_stack, use_binary=False)
    owners = {"nodered": NODE_RED, "mosquitto": MOSQUITTO}

    warnings = prepare_bind_mounts(project, owners, generated_files(project))

    assert warnings == []
    for path in [minimal_stack / "nodered", *(minimal_stack / "nodered").rglob("*")]:
        assert (path.stat().st_uid, path.stat().st_gid) == (1000, 1000), path
    passwd = minimal_stack / "mosquitto" / "config" / "passwd"
    assert passwd.stat().st_uid == 1883
    assert (minimal_stack / "docker-compose.yml").stat().st_uid == 0


def test_c02_missing_bind_folder_is_created_before_start(minimal_stack: Path) -> None:
    folder = minimal_stack / "nodered"
    for path in sorted(folder.rglob("*"), reverse=True):
        path.unlink()
    folder.rmdir()
    (minimal_stack / ".iotstack" / "manifest.json").unlink()
    project = load_project(minimal_stack, use_binary=False)

    prepare_bind_mounts(project, {}, generated_files(project))

    assert folder.is_dir()


def test_c05_generated_file_that_became_a_directory_stops_up(
    minimal_stack: Path,
) -> None:
    config = minimal_stack / "nginx" / "nginx.conf"
    config.unlink()
    config.mkdir()
    project = load_project(minimal_stack, use_binary=False)

    with pytest.raises(RuntimeFailure, match="nginx.conf is a directory.*as a file"):
        prepare_bind_mounts(project, {}, generated_files(project))


def test_host_port_held_by_a_listening_socket_is_found(minimal_stack: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    text = (minimal_stack / "iotstack.yaml").read_text()
    (minimal_stack / "iotstack.yaml").write_text(
        text.replace("\nports: {}", f"\nports: {{nodered: {port}}}")
    )
    render_stack(minimal_stack)
    project = load_project(minimal_stack, use_binary=False)

    try:
        with pytest.raises(ConfigError) as caught:
            check_ports_free(project, existing={})
    finally:
        holder.close()

    message = str(caught.value)
    assert f"port 127.0.0.1:{port} for nodered is already in use" in message
    assert "ports.nodered" in message


def test_unreachable_daemon_is_one_line_saying_how_to_fix(tmp_path: Path) -> None:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}

    result = subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "up", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "cannot reach the Docker engine" in lines[0]
    assert "DOCKER_HOST" in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "iotstack.yaml").exists()


def test_up_refuses_an_unknown_variant_before_asking_the_engine(tmp_path: Path):
    result = subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "up", "--variant", "bogus"]
        + ["--dir", str(tmp_path / "stack")],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"},
        timeout=60,
    )

    assert result.returncode == 2
    assert "--variant" in result.stderr
    assert not (tmp_path / "stack").exists()
