"""`up`, `down` and `status`: run the rendered stack on the Docker engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotstack import console
from iotstack.app import DirOption, JsonOption, app
from iotstack.runtime.policy import PullPolicy

CHECK_TIMEOUT_S = 60.0


@app.command()
def up(
    stack_dir: DirOption = Path("."),
    variant: Annotated[
        str | None,
        typer.Option(
            help="Variant for a new stack (minimal | iotdb-centric | "
            "edge-first); an existing iotstack.yaml decides otherwise."
        ),
    ] = None,
    pull: Annotated[
        PullPolicy, typer.Option(help="When to pull images: missing | always | never.")
    ] = PullPolicy.missing,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the smoke checks after start.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(help="Start even if the memory limits exceed the host's RAM."),
    ] = False,
) -> None:
    """Init (if needed), render, start every service, wait healthy, check."""
    from iotstack.runtime.session import run_up

    plan = run_up(stack_dir, variant=variant, pull=pull, force=force)
    if no_check:
        console.info("smoke checks skipped (--no-check)")
        return

    from iotstack.commands.check import check

    console.info("running the smoke checks")
    check(
        stack_dir=stack_dir, json_output=False, endpoint=None, timeout=CHECK_TIMEOUT_S
    )
    console.success(f"stack {plan.config.project} is up and passes its checks")


@app.command()
def down(
    stack_dir: DirOption = Path("."),
    volumes: Annotated[
        bool, typer.Option("--volumes", help="Also remove the named volumes (data).")
    ] = False,
) -> None:
    """Stop and remove the stack's containers and network (volumes on request)."""
    from iotstack.runtime.session import run_down

    run_down(stack_dir, volumes=volumes)


@app.command()
def status(stack_dir: DirOption = Path("."), json_output: JsonOption = False) -> None:
    """Show each service's state, health and published ports."""
    from iotstack.runtime.session import run_status

    run_status(stack_dir, json_output=json_output)
