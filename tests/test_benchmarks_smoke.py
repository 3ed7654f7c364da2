"""The benchmark command runs end to end and writes its report (no timings checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_quick_cli_benchmark_prints_a_table_and_writes_markdown(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"

    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "cli"]
        + ["--out", str(report)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "iotstack --help" in result.stdout
    assert "render minimal" in result.stdout
    text = report.read_text()
    assert text.startswith("# Benchmarks")
    assert "| measurement | value | compared with | ratio | note |" in text
    assert "`iotstack --help` cold start" in text
    assert "quick smoke run" in text
