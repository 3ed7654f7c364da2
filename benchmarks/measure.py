"""Time a child process and read its own peak memory from the kernel."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class BenchmarkError(Exception):
    """A benchmark could not run; the message says why in one line."""


@dataclass(frozen=True)
class Run:
    """One finished child process: wall time, peak RSS and its output."""

    seconds: float
    peak_rss_mib: float
    returncode: int
    output: str


def run_timed(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 600.0,
    check: bool = True,
) -> Run:
    """Run ``argv`` to the end; wall time and the child's own peak RSS.

    ``os.wait4`` reports the resource usage of exactly this child, where
    RUSAGE_CHILDREN would only give the largest of all children so far.
    """
    with tempfile.TemporaryFile() as output:
        started = time.perf_counter()
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        watchdog = threading.Timer(timeout, process.kill)
        watchdog.start()
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        watchdog.cancel()

        process.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        text = output.read().decode(errors="replace")

    run = Run(seconds, usage.ru_maxrss / 1024, process.returncode, text)
    if seconds >= timeout:
        raise BenchmarkError(f"{argv[0]} took longer than {timeout:.0f} s")
    if check and run.returncode != 0:
        tail = " | ".join(run.output.strip().splitlines()[-3:])
        raise BenchmarkError(f"{' '.join(argv[:3])} exited {run.returncode}: {tail}")
    return run


def python_bin(name: str) -> str:
    """A console script next to this interpreter (skips shell shims)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    raise BenchmarkError(f"{name} is not installed next to {sys.executable}")
