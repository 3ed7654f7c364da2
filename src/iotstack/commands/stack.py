"""`variants`, `init`, `render` and `diff`: describe a stack and write its files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotstack import console
from iotstack.app import DirOption, app


@app.command()
def variants() -> None:
    """List the stack variants."""
    from iotstack.variants import all_variants

    console.table(
        "Variants",
        ["variant", "what it is"],
        [(variant.name, variant.summary) for variant in all_variants()],
    )


@app.command()
def init(
    stack_dir: DirOption = Path("."),
    variant: Annotated[
        str, typer.Option(help="minimal | iotdb-centric | edge-first")
    ] = "minimal",
    backend: Annotated[
        str, typer.Option(help="victoriametrics | influxdb")
    ] = "victoriametrics",
    host: Annotated[
        str | None,
        typer.Option(
            help="Host profile: t3.micro | t3.small | t3.medium "
            "(default: the largest one this machine's RAM covers)."
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Replace an existing iotstack.yaml.")
    ] = False,
) -> None:
    """Write a commented iotstack.yaml describing the stack."""
    from iotstack.scaffold import init_stack

    path = init_stack(
        stack_dir, variant=variant, backend=backend, host=host, force=force
    )
    console.success(
        f"wrote {path}; edit it, then run `iotstack render --dir {stack_dir}`"
    )


@app.command()
def render(
    stack_dir: DirOption = Path("."),
    force: Annotated[
        bool, typer.Option(help="Overwrite generated files you edited.")
    ] = False,
) -> None:
    """Render the stack folder from iotstack.yaml."""
    from iotstack.render import load_plan, render_stack
    from iotstack.report import show_render_report
    from iotstack.runtime.mounts import prepare_rendered_stack

    report = render_stack(stack_dir, force=force)
    show_render_report(stack_dir, report)

    _, plan = load_plan(stack_dir)
    for warning in prepare_rendered_stack(stack_dir, plan):
        console.warn(warning)


@app.command()
def diff(stack_dir: DirOption = Path(".")) -> None:
    """Show what `render` would change, without writing anything."""
    from iotstack.render import render_stack
    from iotstack.report import show_diff

    report = render_stack(stack_dir, dry_run=True)
    show_diff(report)
