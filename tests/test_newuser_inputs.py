"""Inputs a first-time user gets wrong: one line, the right exit code, no traceback.

Each case runs the real entry point in a subprocess, exactly as a user would, and
checks that a bad setting, file or option is refused before anything is written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.cli import run_cli

BASE = "variant: minimal\nbackend: victoriametrics\nproject: demo\n"

# (config text, line the error names, words the one line must hold)
BAD_CONFIGS = {
    "empty file": ("", None, ["is empty", "iotstack init"]),
    "comments only": ("# nothing yet\n", None, ["is empty"]),
    "port given as a yes/no": (BASE + "ports:\n  grafana: true\n", 5, ["ports"]),
    "memory limit of zero": (
        BASE + "host:\n  memory:\n    grafana: 0\n",
        6,
        ["host.memory.grafana"],
    ),
    "negative memory limit": (
        BASE + "host:\n  memory:\n    nginx: -5\n",
        6,
        ["host.memory.nginx"],
    ),
    "key given twice": (BASE + "variant: edge-first\n", 4, ["`variant`", "twice"]),
    "nested key given twice": (
        BASE + "mqtt:\n  anonymous: false\n  anonymous: true\n",
        6,
        ["mqtt.anonymous", "twice"],
    ),
    "bind address as a name": (
        BASE + "bind_address: localhost\n",
        4,
        ["bind_address", "IPv4"],
    ),
    "bind address out of range": (
        BASE + "bind_address: 999.1.1.1\n",
        4,
        ["bind_address", "IPv4"],
    ),
    "front door address as a word": (
        BASE + "front_door_address: all\n",
        4,
        ["front_door_address", "IPv4"],
    ),
    "registry with a scheme": (
        BASE + "registry: http://registry.local:5000\n",
        4,
        ["registry", "registry.local:5000"],
    ),
    "registry with a space": (BASE + "registry: my registry\n", 4, ["registry"]),
    "metrics kept for less than a day": (
        BASE + "retention:\n  metrics: 12h\n",
        5,
        ["retention.metrics", "1d"],
    ),
    "metrics retention in minutes": (
        BASE + "retention:\n  metrics: 3000m\n",
        5,
        ["retention.metrics", "h, d, w or y"],
    ),
    "an MQTT user named like the stack's own": (
        BASE + "mqtt:\n  users: [nodered]\n",
        5,
        ["mqtt.users", "nodered"],
    ),
    "two MQTT users sharing a password key": (
        BASE + "mqtt:\n  users: [my-device, my_device]\n",
        5,
        ["mqtt.users", "share a password"],
    ),
    "a public service that publishes no port": (
        BASE + "public_services: [nginx, ainode]\n",
        4,
        ["public_services", "ainode"],
    ),
    "image in upper case": (
        BASE + "images:\n  grafana: Grafana/Grafana:latest\n",
        5,
        ["images.grafana", "image reference"],
    ),
    "empty image": (BASE + "images:\n  nginx: ''\n", 5, ["images.nginx"]),
    "topic filter with # inside": (
        BASE + "edge:\n  raw_rules:\n    - {topic: 'iot/#/x', keep: true}\n",
        6,
        ["edge.raw_rules.0.topic", "MQTT topic filter"],
    ),
    "ainode host as a URL": (
        BASE + "ainode:\n  host: http://other host/\n",
        5,
        ["ainode.host", "host name"],
    ),
    "mqtt user with a space": (
        BASE + "mqtt:\n  users: [my device]\n",
        5,
        ["mqtt.users", "[a-z0-9][a-z0-9_-]*"],
    ),
}


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single non-empty line the command printed, with no traceback."""
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = [row for row in (result.stdout + result.stderr).splitlines() if row]
    assert len(lines) == 1, result.stdout + result.stderr
    return lines[0]


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_setting_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, case: str
) -> None:
    text, line, words = BAD_CONFIGS[case]
    config = tmp_path / "iotstack.yaml"
    config.write_text(text)

    result = run_cli("render", "--dir", str(tmp_path), cwd=tmp_path)

    message = one_error_line(result)
    assert result.returncode == 2
    assert f"{config}:{line}:" in message if line else f"{config}:" in message
    for word in words:
        assert word in message
    assert [p.name for p in tmp_path.iterdir()] == ["iotstack.yaml"]


def test_valid_references_and_addresses_still_render(tmp_path: Path) -> None:
    digest = "0123456789abcdef" * 4
    config = tmp_path / "iotstack.yaml"
    config.write_text(
        BASE
        + "registry: registry.local:5000/mirror/\n"
        + "bind_address: 10.0.0.5\n"
        + "images:\n"
        + f"  grafana: localhost:5000/my_org/grafana-oss:12.4@sha256:{digest}\n"
        + "ports:\n  grafana: '3001'\n"
        + "host:\n  memory:\n    nginx: 32\n"
        + "edge:\n  raw_rules:\n    - {topic: 'iot/raw/+/+/temp', keep: false}\n"
        + "ainode:\n  host: ai-1.example.org\n"
    )

    result = run_cli("render", "--dir", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    compose = (tmp_path / "docker-compose.yml").read_text()
    assert f"localhost:5000/my_org/grafana-oss:12.4@sha256:{digest}" in compose
    assert "registry.local:5000/mirror/nginx:" in compose
    assert "10.0.0.5:3001:3000" in compose


def test_stack_folder_that_is_a_file_is_named(tmp_path: Path) -> None:
    target = tmp_path / "stack"
    target.write_text("not a folder\n")

    for where in (target, target / "inner"):
        result = run_cli("init", "--dir", str(where), cwd=tmp_path)

        message = one_error_line(result)
        assert result.returncode == 2
        assert "a file where iotstack needs a folder" in message
    assert target.read_text() == "not a folder\n"


def test_replay_of_a_non_utf8_file_names_it(tmp_path: Path) -> None:
    data = tmp_path / "readings.csv"
    data.write_bytes(b"\xff\xfe\x00ts,site\n")

    result = run_cli(
        "edge", "replay", str(data), "--broker", "127.0.0.1:1", cwd=tmp_path
    )

    message = one_error_line(result)
    assert result.returncode == 2
    assert f"{data}: is not a UTF-8 CSV file" in message


def test_replay_refuses_a_negative_limit_before_connecting(tmp_path: Path) -> None:
    data = tmp_path / "readings.csv"
    data.write_text("ts,site,device,metric,value\n1,s1,d1,temp,20.5\n")

    result = run_cli(
        "edge",
        "replay",
        str(data),
        "--broker",
        "127.0.0.1:1",
        "--limit",
        "-1",
        cwd=tmp_path,
    )

    message = one_error_line(result)
    assert result.returncode == 2
    assert "limit -1" in message


@pytest.mark.parametrize("command", ["replay", "agent"])
def test_broker_port_out_of_range_is_bad_input(tmp_path: Path, command: str) -> None:
    data = tmp_path / "readings.csv"
    data.write_text("ts,site,device,metric,value\n1,s1,d1,temp,20.5\n")
    args = {
        "replay": [str(data)],
        "agent": ["--registry", "http://127.0.0.1:1/", "--models-dir", "models"],
    }[command]

    result = run_cli(
        "edge", command, *args, "--broker", "127.0.0.1:99999", cwd=tmp_path
    )

    message = one_error_line(result)
    assert result.returncode == 2
    assert "127.0.0.1:99999" in message
    assert "HOST:PORT" in message


def test_check_endpoint_port_out_of_range_is_bad_input(tmp_path: Path) -> None:
    assert run_cli("init", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    assert run_cli("render", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0

    result = run_cli(
        "check",
        "--dir",
        str(tmp_path),
        "--timeout",
        "1",
        "--endpoint",
        "victoriametrics=http://127.0.0.1:99999",
        cwd=tmp_path,
    )

    message = one_error_line(result)
    assert result.returncode == 2
    assert "victoriametrics=http://127.0.0.1:99999" in message


def test_malformed_docker_host_is_one_line(tmp_path: Path) -> None:
    assert run_cli("init", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    env = {"DOCKER_HOST": "http://[::1"}

    status = run_cli("status", "--dir", str(tmp_path), cwd=tmp_path, env=env)
    doctor = run_cli("doctor", "--dir", str(tmp_path), cwd=tmp_path, env=env)

    assert status.returncode == 1
    assert "http://[::1" in one_error_line(status)
    assert "Traceback" not in doctor.stdout + doctor.stderr
    assert "no Docker daemon answers" in doctor.stdout
