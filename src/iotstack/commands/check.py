"""`check`: prove the stack works by writing probes and reading them back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iotstack import console
from iotstack.app import DirOption, JsonOption, app

DEFAULT_TIMEOUT_S = 30.0


@app.command()
def check(
    stack_dir: DirOption = Path("."),
    json_output: JsonOption = False,
    endpoint: Annotated[
        list[str] | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="NAME=URL overriding a service's address (repeatable).",
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option(help="Seconds each check may take.", min=1.0)
    ] = DEFAULT_TIMEOUT_S,
) -> None:
    """Run the smoke checks against the stack; exit 1 if any fails."""
    from iotstack.checks.endpoints import resolve_endpoints
    from iotstack.checks.runner import run_checks
    from iotstack.errors import CheckFailed, ConfigError

    endpoints = resolve_endpoints(stack_dir, endpoint or [])
    results = run_checks(endpoints, timeout)
    if not results:
        raise ConfigError(
            "no service of this stack can be checked",
            fix="render the stack first, or name services with --endpoint",
        )

    if json_output:
        console.emit_json(
            {
                "ok": all(result.ok for result in results),
                "checks": [result.as_dict() for result in results],
            }
        )
    else:
        console.check_table(
            (r.name, r.target, r.ok, r.latency_s, r.detail) for r in results
        )

    failed = [result.name for result in results if not result.ok]
    if failed:
        raise CheckFailed(
            f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}"
        )
