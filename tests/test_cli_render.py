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
