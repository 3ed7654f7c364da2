"""Run the benchmarks side by side, print one table and write docs/benchmarks.md.

    python -m benchmarks [--quick] [--only NAME ...] [--out FILE] [--keep]

Each benchmark is a module here with ``NAME``, ``TITLE`` and
``run(options) -> Section``. A benchmark that cannot run on this machine is
reported as skipped with its reason; the others still run.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.measure import REPO, BenchmarkError
from benchmarks.results import COLUMNS, Options, Section

BENCHMARKS = ("cli", "startup", "footprint", "pipeline", "check")
# footprint.py is a command of its own; its section comes from a wrapper.
MODULES = {"footprint": "footprint_report"}
DEFAULT_OUT = REPO / "docs" / "benchmarks.md"

console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the chosen benchmarks, report them."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    work_dir = Path(tempfile.mkdtemp(prefix="iotstack-bench-"))
    options = Options(quick=args.quick, work_dir=work_dir)

    started = time.perf_counter()
    try:
        with options.resources:
            sections = [_run_one(name, options) for name in args.only or BENCHMARKS]
    finally:
        if not args.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    elapsed = time.perf_counter() - started

    for section in sections:
        _print_section(section)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write_atomically(args.out, to_markdown(sections, options, elapsed, argv))
    console.print(f"wrote {args.out} ({elapsed:.0f} s in all)")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="one run of each cheap part (smoke)"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=BENCHMARKS,
        help="run only this benchmark (repeatable)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="markdown report to write"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder for inspection"
    )
    return parser


def _run_one(name: str, options: Options) -> Section:
    """Run one benchmark module; a failure becomes a skipped section."""
    console.print(f"[bold]benchmark {name}[/bold] …")
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.{MODULES.get(name, name)}")
    except ModuleNotFoundError as exc:
        if exc.name != f"benchmarks.{MODULES.get(name, name)}":
            raise
        return Section(name, name, skipped=f"benchmarks/{name}.py is not there yet")

    title = getattr(module, "TITLE", name)
    runner = getattr(module, "run", None)
    if runner is None:
        return Section(name, title, skipped=f"benchmarks/{name}.py has no run(options)")
    try:
        section = runner(options)
    except BenchmarkError as exc:
        section = Section(name, title, getattr(module, "METHOD", ""), skipped=str(exc))
    except Exception as exc:
        logging.getLogger(__name__).debug("%s", traceback.format_exc())
        reason = f"failed: {type(exc).__name__}: {exc}"
        section = Section(name, title, getattr(module, "METHOD", ""), skipped=reason)
    section.seconds = time.perf_counter() - started
    return section


def _print_section(section: Section) -> None:
    table = Table(
        title=f"{section.title} ({section.seconds:.0f} s)", title_justify="left"
    )
    for column in COLUMNS:
        table.add_column(column, overflow="fold")
    for measurement in section.measurements:
        table.add_row(*measurement.as_row())
    if section.measurements:
        console.print(table)
    else:
        console.print(f"[bold]{section.title}[/bold]")
    for note in section.notes:
        console.print(f"  • {note}")
    if section.skipped:
        console.print(f"  [yellow]not measured:[/yellow] {section.skipped}")


def machine_summary() -> str:
    """CPU, memory and software that the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}; "
        f"load average at the end {load}"
    )


def to_markdown(
    sections: list[Section], options: Options, elapsed: float, argv: list[str] | None
) -> str:
    """The whole report as Markdown."""
    command = " ".join(
        ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
    )
    lines = [
        "# Benchmarks",
        "",
        "Generated by `python -m benchmarks` (do not edit by hand: run it again).",
        "Every figure below comes from one run of that command on the machine named",
        "here; ratios compare two things measured in that same run. A ratio is",
        "value / reference: below 1 is faster for times, near 1 is better for rates.",
        "",
        f"- Command: `{command.strip()}`"
        + (" (quick smoke run)" if options.quick else ""),
        f"- Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- Machine: {machine_summary()}",
        f"- Total run time: {elapsed:.0f} s",
        "",
    ]
    for section in sections:
        lines += _section_markdown(section)
    return "\n".join(lines).rstrip() + "\n"


def _section_markdown(section: Section) -> list[str]:
    lines = [f"## {section.title}", ""]
    if section.method:
        lines += [section.method, ""]
    if section.measurements:
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "---|" * len(COLUMNS))
        for measurement in section.measurements:
            cells = [cell.replace("|", "\\|") for cell in measurement.as_row()]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    for note in section.notes:
        lines.append(f"- {note}")
    if section.skipped:
        lines.append(f"- **Not measured:** {section.skipped}")
    if section.notes or section.skipped:
        lines.append("")
    return lines


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


if __name__ == "__main__":
    raise SystemExit(main())
