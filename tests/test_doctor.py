"""`iotstack doctor` findings, each provoked by a real condition on this host."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.native import free_port
from iotstack.doctor import Finding, check_engine, run_doctor, try_bind
from iotstack.render import render_stack
from iotstack.scaffold import init_stack

SERVICES = (
    "victoriametrics",
    "prometheus",
    "mosquitto",
    "nodered",
    "iotdb",
    "grafana",
    "nginx",
)


def make_stack(stack_dir: Path, **settings) -> Path:
    """Init and render a stack on free ports; `settings` go into iotstack.yaml."""
    init_stack(stack_dir, variant="minimal", backend="victoriametrics")
    config = {
        "ports": {name: free_port() for name in SERVICES},
        "front_door_address": "127.0.0.1",
        "host": {"profile": "t3.small"},
        "ainode": {"host": "gpu-box"},
        **settings,
    }
    path = stack_dir / "iotstack.yaml"
    current = yaml.safe_load(path.read_text()) or {}
    path.write_text(yaml.safe_dump({**current, **config}))
    render_stack(stack_dir)
    return stack_dir


def findings_for(stack_dir: Path, check: str) -> list[Finding]:
    return [f for f in run_doctor(stack_dir) if f.check == check]


def only(findings: list[Finding], text: str) -> Finding:
    matching = [f for f in findings if text in f.detail]
    assert len(matching) == 1, findings
    return matching[0]


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """DOCKER_HOST at a socket path that does not exist."""
    url = f"unix://{tmp_path / 'absent' / 'docker.sock'}"
    monkeypatch.setenv("DOCKER_HOST", url)
    return url


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A real listening socket on 127.0.0.1 holding a port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    yield sock
    sock.close()


def test_a_port_held_by_a_listening_socket_fails(tmp_path, no_engine, listener):
    held = listener.getsockname()[1]
    ports = {name: free_port() for name in SERVICES} | {"mosquitto": held}
    stack = make_stack(tmp_path, ports=ports)

    finding = only(findings_for(stack, "port"), f"127.0.0.1:{held} (mosquitto)")

    assert finding.status == "fail"
    assert "in use" in finding.detail
    assert "ports.mosquitto" in finding.fix


def test_free_ports_are_ok(tmp_path, no_engine):
    stack = make_stack(tmp_path)

    ports = findings_for(stack, "port")

    assert {f.status for f in ports} == {"ok"}
    assert len(ports) == len(SERVICES)


def test_try_bind_tells_in_use_from_free(listener):
    assert try_bind("127.0.0.1", listener.getsockname()[1]) == "in use"
    assert try_bind("127.0.0.1", free_port()) is None
    assert try_bind("192.0.2.1", free_port()) == "no such address"


def test_one_port_on_any_address_and_on_loopback_clashes(tmp_path, no_engine):
    shared = free_port()
    ports = {name: free_port() for name in SERVICES} | {
        "nginx": shared,
        "grafana": shared,
    }
    stack = make_stack(tmp_path, ports=ports, front_door_address="0.0.0.0")

    clash = only(findings_for(stack, "port"), "both publish")

    assert clash.status == "fail"
    assert f"port {shared}" in clash.detail


def test_a_file_where_a_folder_belongs_fails(tmp_path, no_engine):
    stack = make_stack(tmp_path)
    shutil.rmtree(stack / "prometheus")
    (stack / "prometheus").write_text("not a folder\n")

    finding = only(findings_for(stack, "bind mount"), "prometheus:/etc/prometheus")

    assert finding.status == "fail"
    assert "a file where a folder belongs" in finding.detail
    assert "iotstack render" in finding.fix


def test_a_folder_where_a_file_belongs_fails(tmp_path, no_engine):
    stack = make_stack(tmp_path)
    (stack / "nginx" / "nginx.conf").unlink()
    (stack / "nginx" / "nginx.conf").mkdir()

    finding = only(findings_for(stack, "bind mount"), "nginx:/etc/nginx/nginx.conf")

    assert finding.status == "fail"
    assert "a folder where a file belongs" in finding.detail


def test_a_missing_bind_mount_source_fails(tmp_path, no_engine):
    stack = make_stack(tmp_path)
    (stack / "nginx" / "nginx.conf").unlink()

    finding = only(findings_for(stack, "bind mount"), "nginx:/etc/nginx/nginx.conf")

    assert finding.status == "fail"
    assert "missing" in finding.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="changing owners needs root")
def test_a_folder_the_image_user_cannot_write_fails_until_chowned(tmp_path, no_engine):
    stack = make_stack(tmp_path)
    nodered = stack / "nodered"
    os.chown(nodered, 0, 0)
    nodered.chmod(0o755)

    wrong = only(findings_for(stack, "bind mount"), "nodered:/data")
    os.chown(nodered, 1000, 1000)
    right = only(findings_for(stack, "bind mount"), "nodered:/data")

    assert wrong.status == "fail"
    assert "uid 1000" in wrong.detail
    assert "chown -R 1000:1000" in wrong.fix
    assert right.status == "ok"


def test_an_env_file_others_can_read_fails(tmp_path, no_engine):
    stack = make_stack(tmp_path)
    (stack / ".env").chmod(0o644)

    [finding] = findings_for(stack, ".env")

    assert finding.status == "fail"
    assert "0644" in finding.detail
    assert "chmod 600" in finding.fix


def test_an_env_file_with_mode_0600_is_ok(tmp_path, no_engine):
    stack = make_stack(tmp_path)

    [finding] = findings_for(stack, ".env")

    assert finding.status == "ok"


def test_a_budget_over_the_host_ram_fails_and_names_the_ways_out(tmp_path, no_engine):
    stack = make_stack(tmp_path, host={"profile": "t3.micro"}, ainode={})

    [finding] = findings_for(stack, "memory budget")

    assert finding.status == "fail"
    assert "does NOT fit" in finding.detail
    assert "services:" in finding.fix
    assert "host.profile: t3.medium" in finding.fix


def test_a_budget_that_fits_is_ok(tmp_path, no_engine):
    stack = make_stack(tmp_path)

    [finding] = findings_for(stack, "memory budget")

    assert finding.status == "ok"


def test_an_unreachable_daemon_fails_naming_docker_host(no_engine):
    client, [finding] = check_engine()

    assert client is None
    assert finding.status == "fail"
    assert no_engine in finding.detail
    assert "DOCKER_HOST" in finding.fix


def test_without_a_daemon_the_images_cannot_be_checked(tmp_path, no_engine):
    stack = make_stack(tmp_path)

    [finding] = findings_for(stack, "images")

    assert finding.status == "warn"


def test_doctor_command_exits_1_on_a_failure_and_prints_json(tmp_path, no_engine):
    stack = make_stack(tmp_path)

    result = subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "doctor", "--dir", str(stack), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
    findings = json.loads(result.stdout)
    assert {"check", "status", "detail", "fix"} <= set(findings[0])
    assert any(
        f["check"] == "docker daemon" and f["status"] == "fail" for f in findings
    )
    assert "check(s) failed" in result.stderr


@pytest.mark.docker
def test_a_running_engine_reports_its_api_version(docker_engine, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.base_url)

    client, [finding] = check_engine()

    assert client is not None
    assert finding.status == "ok"
    assert f"API {docker_engine.client.version()['ApiVersion']}" in finding.detail
    client.close()


@pytest.mark.docker
def test_images_are_checked_against_the_engine(docker_engine, monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", docker_engine.base_url)
    local = next(
        (i.tags[0] for i in docker_engine.client.images.list() if i.tags), None
    )
    if local is None:
        pytest.skip("the test engine holds no image yet")
    stack = make_stack(tmp_path, images={"nginx": local})

    images = findings_for(stack, "image")

    here = only(images, local)
    assert here.status == "ok"
    assert "is here for linux/" in here.detail
    elsewhere = [f for f in images if local not in f.detail]
    assert elsewhere and {f.status for f in elsewhere} == {"warn"}
    assert all("could not be asked" in f.detail for f in elsewhere)
