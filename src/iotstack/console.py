"""Every line the user sees goes through here (rich on stderr/stdout)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    """A plain progress or result line."""
    out.print(escape(message))


def success(message: str) -> None:
    """A line saying something worked."""
    out.print(f"[green]✓[/green] {escape(message)}")


def warn(message: str) -> None:
    """A line saying something needs attention but did not stop the command."""
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    """The one line shown for an error caught at the CLI edge."""
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, emoji=False)


def emit_json(data: Any) -> None:
    """Machine-readable output for `--json`."""
    print(json.dumps(data, indent=2, sort_keys=True, default=str))


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A result table."""
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(str(cell) for cell in row))
    out.print(grid)


def check_table(rows: Iterable[tuple[str, str, bool, float, str]]) -> None:
    """Smoke-check results: check, target, pass/FAIL, latency and detail."""
    grid = Table(title="Checks", title_justify="left")
    for column in ("check", "target", "result", "latency", "detail"):
        grid.add_column(column, overflow="fold")
    for name, target, ok, latency_s, detail in rows:
        result = "[green]pass[/green]" if ok else "[red]FAIL[/red]"
        grid.add_row(
            escape(name), escape(target), result, f"{latency_s:.2f} s", escape(detail)
        )
    out.print(grid)


def diff(text: str) -> None:
    """A unified diff, coloured by line kind."""
    for line in text.splitlines():
        if line.startswith(("+++", "---")):
            out.print(line, style="bold", markup=False)
        elif line.startswith("+"):
            out.print(line, style="green", markup=False)
        elif line.startswith("-"):
            out.print(line, style="red", markup=False)
        elif line.startswith("@@"):
            out.print(line, style="cyan", markup=False)
        else:
            out.print(line, markup=False)


def log_tail(text: str) -> None:
    """The last lines of a service's log, printed as they are."""
    out.print(text, markup=False, highlight=False)


def pull_progress():
    """A progress display with one download bar per image being pulled."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        console=out,
    )


def service_progress():
    """A progress display with one line per service and what it is doing."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.fields[service]:<16}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=out,
    )
