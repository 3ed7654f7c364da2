"""Bad `iotstack.yaml` input: exit code 2, one line naming file:line, key and fix.

Each case runs the installed entry point in a subprocess, so the exit code and
the message are exactly what a user sees, and nothing may be written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.cli import run_cli

BASE = "variant: minimal\nbackend: victoriametrics\nproject: demo\n"

# (config text, line the error names, key it names, words of the fix)
BAD_CONFIGS = {
    "unknown key": (BASE + "colour: red\n", 4, "colour", "spelling"),
    "unknown nested key": (
        BASE + "mqtt:\n  anonymous: false\n  userz: [a]\n",
        6,
        "mqtt.userz",
        "spelling",
    ),
    "wrong type": (BASE + "ports:\n  grafana: lots\n", 5, "ports.grafana", "number"),
    "wrong type of section": (BASE + "mqtt: yes\n", 4, "mqtt", "mapping"),
    "bad literal": (
        "variant: maximal\nbackend: victoriametrics\n",
        1,
        "variant",
        "'minimal', 'iotdb-centric' or 'edge-first'",
    ),
    "bad duration": (
        BASE + "retention:\n  metrics: forever\n",
        5,
        "retention.metrics",
        "30d",
    ),
    "yaml syntax error": (BASE + "ports: [1883\nimages: {}\n", 5, "YAML", "quoting"),
    "impossible combination": (
        "variant: iotdb-centric\nservices:\n  iotdb: false\n",
        3,
        "services.iotdb",
        "pick a variant",
    ),
    "duplicate port": (
        BASE + "ports:\n  grafana: 3000\n  nodered: 3000\n",
        5,
        "ports.grafana",
        "its own port",
    ),
    "unknown service": (BASE + "images:\n  kafka: x:1\n", 5, "images.kafka", "use one"),
    "node-red without its broker": (
        BASE + "services:\n  mosquitto: false\n",
        5,
        "services.nodered",
        "turn mosquitto on",
    ),
}


@pytest.mark.parametrize("command", ["render", "diff"])
@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_one_line_exit_2_and_writes_nothing(
    tmp_path: Path, case: str, command: str
) -> None:
    text, line, key, fix = BAD_CONFIGS[case]
    config = tmp_path / "iotstack.yaml"
    config.write_text(text)

    result = run_cli(command, "--dir", str(tmp_path), cwd=tmp_path)

    lines = [row for row in result.stderr.splitlines() if row.strip()]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert f"{config}:{line}:" in lines[0]
    assert key in lines[0]
    assert fix in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["iotstack.yaml"]
    assert config.read_text() == text


def test_bad_config_leaves_an_existing_stack_untouched(tmp_path: Path) -> None:
    assert run_cli("init", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    assert run_cli("render", "--dir", str(tmp_path), cwd=tmp_path).returncode == 0
    before = _snapshot(tmp_path)
    config = tmp_path / "iotstack.yaml"
    config.write_text(config.read_text() + "mqtt:\n  anonymous: maybe\n")
    before["iotstack.yaml"] = config.read_bytes()

    result = run_cli("render", "--dir", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 2
    assert "mqtt" in result.stderr
    assert _snapshot(tmp_path) == before


def test_missing_config_says_to_run_init(tmp_path: Path) -> None:
    result = run_cli("render", "--dir", str(tmp_path), cwd=tmp_path)

    assert result.returncode == 2
    assert "iotstack init" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_refuses_an_unknown_variant(tmp_path: Path) -> None:
    result = run_cli(
        "init", "--dir", str(tmp_path), "--variant", "maximal", cwd=tmp_path
    )

    assert result.returncode == 2
    assert "--variant" in result.stderr
    assert "edge-first" in result.stderr
    assert list(tmp_path.iterdir()) == []


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
