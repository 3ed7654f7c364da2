"""`doctor` and `budget`: does the host fit the stack, and what to fix if not."""

from __future__ import annotations

from pathlib import Path

from iotstack import console
from iotstack.app import DirOption, JsonOption, app
from iotstack.errors import CheckFailed

STATUS_MARK = {"ok": "[green]ok[/green]", "warn": "[yellow]warn[/yellow]"}


@app.command()
def doctor(stack_dir: DirOption = Path("."), as_json: JsonOption = False) -> None:
    """Check the host before `up`: engine, compose, memory, disk, ports, files."""
    from iotstack.doctor import as_json as findings_json
    from iotstack.doctor import failed, run_doctor

    findings = run_doctor(stack_dir)

    if as_json:
        console.emit_json(findings_json(findings))
    else:
        console.table(
            f"Doctor: {stack_dir}",
            ["check", "result", "detail", "how to fix"],
            [
                (
                    finding.check,
                    STATUS_MARK.get(finding.status, "[red]fail[/red]"),
                    finding.detail,
                    finding.fix,
                )
                for finding in findings
            ],
        )

    problems = failed(findings)
    if problems:
        raise CheckFailed(f"doctor: {len(problems)} check(s) failed; see the table")
    if not as_json:
        console.success("the host is ready for this stack")


@app.command()
def budget(stack_dir: DirOption = Path("."), as_json: JsonOption = False) -> None:
    """Show the stack's memory budget against the host profile."""
    from iotstack.budget import stack_budget
    from iotstack.config import load_config
    from iotstack.plan import build_plan

    result = stack_budget(build_plan(load_config(stack_dir)))

    if as_json:
        console.emit_json(result.as_dict())
        return

    rows = [(name, limit) for name, limit in result.limits.items()]
    rows += [
        ("docker engine", result.engine_mib),
        ("os reserve", result.os_reserve_mib),
        ("total", result.total_mib),
        (f"host RAM ({result.profile})", result.host_ram_mib),
    ]
    console.table(f"Memory budget (MiB): {result.variant}", ["part", "MiB"], rows)
    if result.fits:
        console.success(result.summary())
        return
    console.warn(result.summary())
    for way in result.ways_out:
        verdict = "fits" if way.fits else "still too big"
        console.info(f"  way out: {way.change} → {way.total_mib} MiB ({verdict})")
