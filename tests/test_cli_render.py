"""The render path through the real CLI: init, render, re-render."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from iotstack.app import app
from iotstack.cli import main  # noqa: F401  (registers every command)

runner = CliRunner()


@pytest.mark.parametrize("variant", ["minimal", "iotdb-centric", "edge-first"])
@pytest.mark.parametrize("backend", ["victoriametrics", "influxdb"])
def test_init_then_render_writes_the_compose_file(tmp_path: Path, variant, backend):
    init = runner.invoke(
        app,
        ["init", "--dir", str(tmp_path), "--variant", variant, "--backend", backend],
    )
    assert init.exit_code == 0, init.output

    result = runner.invoke(app, ["render", "--dir", str(tmp_path)])

    assert result.exit_code == 0, result.output
    assert (tmp_path / "docker-compose.yml").is_file()
    assert (tmp_path / ".env").stat().st_mode & 0o777 == 0o600


def test_second_render_changes_nothing(tmp_path: Path):
    runner.invoke(app, ["init", "--dir", str(tmp_path)])
    runner.invoke(app, ["render", "--dir", str(tmp_path)])
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    result = runner.invoke(app, ["render", "--dir", str(tmp_path)])

    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert result.exit_code == 0
    assert "0 written" in result.output
    assert before == after


@pytest.mark.parametrize(
    ("ram_mib", "expected"),
    [
        (None, "t3.micro"),
        (512, "t3.micro"),
        (950, "t3.micro"),
        (1990, "t3.small"),
        (3900, "t3.medium"),
        (24000, "t3.medium"),
    ],
)
def test_init_picks_the_largest_profile_the_machine_covers(ram_mib, expected):
    from iotstack.data import load_profile
    from iotstack.scaffold import detect_host_profile

    assert detect_host_profile(load_profile("hosts"), ram_mib) == expected


def test_init_takes_an_explicit_host_profile(tmp_path: Path):
    result = runner.invoke(app, ["init", "--dir", str(tmp_path), "--host", "t3.small"])

    assert result.exit_code == 0, result.output
    assert "profile: t3.small" in (tmp_path / "iotstack.yaml").read_text()


def test_init_refuses_an_unknown_host_profile(tmp_path: Path):
    from iotstack.errors import ConfigError

    result = runner.invoke(app, ["init", "--dir", str(tmp_path), "--host", "m5.huge"])

    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 2
    assert "--host" in str(result.exception)
    assert not (tmp_path / "iotstack.yaml").exists()
