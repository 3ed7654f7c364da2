"""`iotstack check` wall time on a healthy stack."""

from __future__ import annotations

import json
import subprocess

from benchmarks.measure import BenchmarkError, python_bin, run_timed
from benchmarks.native_stack import shared_stack
from benchmarks.results import Measurement, Options, Section, median

NAME = "check"
TITLE = "`iotstack check` on a healthy stack"
METHOD = (
    "`iotstack check --dir STACK --json` run as a fresh process against the "
    "natively started minimal stack of the pipeline benchmark (Grafana and "
    "AINode switched off: no package here). Wall time is the median of the "
    "runs; each check's own latency comes from the JSON output of the last run."
)


def run(options: Options) -> Section:
    """Time the whole command, and read each check's latency."""
    iotstack = python_bin("iotstack")
    help_text = subprocess.run(
        [iotstack, "--help"], capture_output=True, text=True, check=False
    ).stdout
    if " check " not in help_text:
        raise BenchmarkError("`iotstack check` is not part of the CLI yet")

    section = Section(NAME, TITLE, METHOD)
    stack = shared_stack(options)
    argv = [iotstack, "check", "--dir", str(stack.stack_dir), "--json"]
    runs = [run_timed(argv, check=False) for _ in range(options.repeat(5))]

    last = runs[-1]
    rows = _rows(last.output)
    failed = [row for row in rows if not row.get("ok")]
    section.add(
        Measurement(
            "`iotstack check` wall time",
            median([r.seconds for r in runs]),
            "s",
            note=f"exit {last.returncode}; {len(rows) - len(failed)}/{len(rows)} "
            f"checks passed; peak RSS {max(r.peak_rss_mib for r in runs):.0f} MiB",
        )
    )
    for row in rows:
        section.add(
            Measurement(
                f"check {row['check']} ({row['target']})",
                float(row["latency_ms"]),
                "ms",
                note="ok" if row["ok"] else "failed",
            )
        )
    for row in failed:
        section.notes.append(f"{row['check']} did not pass here: {row['detail']}")
    return section


def _rows(output: str) -> list[dict]:
    """The check rows of `--json` output."""
    start = output.find("{")
    if start < 0:
        raise BenchmarkError(f"`iotstack check --json` printed no JSON: {output[:200]}")
    data, _ = json.JSONDecoder().raw_decode(output[start:])
    return data.get("checks", [])
