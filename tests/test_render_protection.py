"""Re-rendering is safe: edits are kept, secrets stay put and are never shown."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotstack.app import app
from iotstack.cli import main  # noqa: F401  (registers every command)
from iotstack.envfile import read_env

VARIANTS = ["minimal", "iotdb-centric", "edge-first"]
BACKENDS = ["victoriametrics", "influxdb"]

runner = CliRunner()


def iotstack(*args: str) -> tuple[int, str]:
    """Run a command through the CLI; returns exit code and everything shown."""
    result = runner.invoke(app, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def new_stack(root: Path, variant: str = "minimal", backend: str = "influxdb") -> Path:
    code, output = iotstack(
        "init", "--dir", str(root), "--variant", variant, "--backend", backend
    )
    assert code == 0, output
    code, output = iotstack("render", "--dir", str(root))
    assert code == 0, output
    return root


def snapshot(root: Path) -> dict[str, tuple[bytes, int, int]]:
    """Every file's bytes, mode and mtime."""
    return {
        p.relative_to(root).as_posix(): (
            p.read_bytes(),
            stat.S_IMODE(p.stat().st_mode),
            p.stat().st_mtime_ns,
        )
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def secrets_of(root: Path) -> dict[str, str]:
    env = read_env(root / ".env")
    return {k: v for k, v in env.items() if k.endswith(("PASSWORD", "SALT"))}


def set_option(root: Path, pattern: str, replacement: str) -> None:
    config = root / "iotstack.yaml"
    text, count = re.subn(pattern, replacement, config.read_text(), flags=re.M)
    assert count == 1, pattern
    config.write_text(text)


# --- edit protection -----------------------------------------------------------


def test_render_keeps_an_edited_file_and_shows_the_diff(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    edited = stack / "prometheus" / "prometheus.yml"
    edited.write_text(edited.read_text() + "# tuned by hand\n")
    mine = edited.read_bytes()

    code, output = iotstack("render", "--dir", str(stack))

    assert code == 0, output
    assert edited.read_bytes() == mine
    assert "prometheus/prometheus.yml" in output
    assert "--force" in output
    assert "--- prometheus/prometheus.yml (on disk)" in output
    assert "+++ prometheus/prometheus.yml (rendered)" in output
    assert "-# tuned by hand" in output


def test_render_keeps_the_edit_on_every_later_render(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    edited = stack / "nginx" / "nginx.conf"
    edited.write_text(edited.read_text().replace("worker_connections 256", "w 1"))
    mine = edited.read_bytes()

    for _ in range(2):
        code, _output = iotstack("render", "--dir", str(stack))
        assert code == 0

    assert edited.read_bytes() == mine


def test_force_overwrites_the_edited_file(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    edited = stack / "prometheus" / "prometheus.yml"
    rendered = edited.read_bytes()
    edited.write_text("# mine\n")

    code, output = iotstack("render", "--dir", str(stack), "--force")

    assert code == 0, output
    assert edited.read_bytes() == rendered
    assert "overwritten" in output


def test_a_changed_setting_updates_an_unedited_file(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    set_option(stack, r"^  prometheus: 2d", "  prometheus: 5d")

    code, output = iotstack("render", "--dir", str(stack))

    assert code == 0, output
    compose = (stack / "docker-compose.yml").read_text()
    assert "--storage.tsdb.retention.time=5d" in compose
    assert "updated  docker-compose.yml" in output


def test_diff_shows_the_change_and_writes_nothing(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    set_option(stack, r"^  prometheus: 2d", "  prometheus: 5d")
    before = snapshot(stack)

    code, output = iotstack("diff", "--dir", str(stack))

    assert code == 0, output
    assert "-    - --storage.tsdb.retention.time=2d" in output
    assert "+    - --storage.tsdb.retention.time=5d" in output
    assert snapshot(stack) == before


def test_diff_of_an_unchanged_stack_says_so(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    before = snapshot(stack)

    code, output = iotstack("diff", "--dir", str(stack))

    assert code == 0
    assert "nothing to change" in output
    assert snapshot(stack) == before


def test_diff_before_the_first_render_creates_no_env(tmp_path: Path) -> None:
    code, _ = iotstack("init", "--dir", str(tmp_path))
    assert code == 0

    code, output = iotstack("diff", "--dir", str(tmp_path))

    assert code == 0
    assert "+++ docker-compose.yml (rendered)" in output
    assert [p.name for p in tmp_path.iterdir()] == ["iotstack.yaml"]


# --- secrets -------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_env_is_private_and_holds_every_generated_secret(
    tmp_path: Path, variant: str, backend: str
) -> None:
    stack = new_stack(tmp_path, variant, backend)

    env = stack / ".env"
    secrets = secrets_of(stack)
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert "MQTT_NODERED_PASSWORD" in secrets
    assert "GRAFANA_ADMIN_PASSWORD" in secrets
    assert ("INFLUXDB_ADMIN_PASSWORD" in secrets) == (backend == "influxdb")
    assert all(len(value) >= 24 for value in secrets.values())
    assert len(set(secrets.values())) == len(secrets)


def test_secrets_are_kept_across_renders_and_config_changes(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    first = secrets_of(stack)
    env = stack / ".env"
    env.write_text(env.read_text() + "MY_OWN=kept\n")
    set_option(stack, r"^  users: \[device\]", "  users: [device, gateway]")

    code, output = iotstack("render", "--dir", str(stack))

    second = secrets_of(stack)
    assert code == 0, output
    assert {k: second[k] for k in first} == first
    assert set(second) - set(first) == {"MQTT_GATEWAY_PASSWORD"}
    assert read_env(env)["MY_OWN"] == "kept"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_env_made_readable_by_others_is_made_private_again(tmp_path: Path) -> None:
    stack = new_stack(tmp_path)
    (stack / ".env").chmod(0o644)

    iotstack("render", "--dir", str(stack))

    assert stat.S_IMODE((stack / ".env").stat().st_mode) == 0o600


def test_no_secret_appears_in_render_or_diff_output(tmp_path: Path) -> None:
    """Files that hold a secret are edited and deleted, so their diffs are shown."""
    stack = new_stack(tmp_path, "minimal", "influxdb")
    outputs = []
    password_file = stack / "prometheus" / "influxdb-password"
    assert password_file.exists()
    password_file.write_text("edited\n")
    (stack / "mosquitto" / "config" / "passwd").unlink()
    set_option(stack, r"^  users: \[device\]", "  users: [device, gateway]")

    for args in (["diff"], ["render"], ["render", "--force"], ["diff"]):
        code, output = iotstack(*args, "--dir", str(stack))
        assert code == 0, output
        outputs.append(output)

    shown = "\n".join(outputs)
    assert "influxdb-password" in shown
    assert "********" in shown
    for key, value in secrets_of(stack).items():
        assert value not in shown, f"{key} was shown"


def test_files_with_secrets_or_hashes_are_private(tmp_path: Path) -> None:
    stack = new_stack(tmp_path, "minimal", "influxdb")

    for relative in (
        "prometheus/influxdb-password",
        "mosquitto/config/passwd",
        "nodered/flows_cred.json",
    ):
        mode = stat.S_IMODE((stack / relative).stat().st_mode)
        assert mode == 0o600, relative


# --- determinism ---------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_render_is_byte_identical(
    tmp_path: Path, variant: str, backend: str
) -> None:
    stack = new_stack(tmp_path, variant, backend)
    before = snapshot(stack)

    code, output = iotstack("render", "--dir", str(stack))

    assert code == 0, output
    assert "0 written" in output
    assert snapshot(stack) == before


def test_two_stacks_from_one_config_differ_only_by_secrets(tmp_path: Path) -> None:
    """Rendering is a function of config and .env: same inputs, same bytes."""
    first = new_stack(tmp_path / "a")
    second = tmp_path / "b"
    second.mkdir()
    (second / "iotstack.yaml").write_bytes((first / "iotstack.yaml").read_bytes())
    (second / ".env").write_bytes((first / ".env").read_bytes())
    (second / ".env").chmod(0o600)

    code, output = iotstack("render", "--dir", str(second))

    assert code == 0, output
    assert {k: v[0] for k, v in snapshot(first).items()} == {
        k: v[0] for k, v in snapshot(second).items()
    }


def test_a_lost_env_on_a_rendered_stack_is_refused_not_regenerated(tmp_path: Path):
    from iotstack.errors import ConfigError
    from iotstack.render import render_stack
    from iotstack.scaffold import init_stack

    init_stack(tmp_path, variant="minimal", backend="victoriametrics")
    render_stack(tmp_path)
    (tmp_path / ".env").unlink()
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    with pytest.raises(ConfigError, match="restore it from your backup"):
        render_stack(tmp_path)

    assert not (tmp_path / ".env").exists()
    assert before == {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
