"""The `up`, `down` and `status` flows, from the stack folder to the engine."""

from __future__ import annotations

import logging
from pathlib import Path

from iotstack import console
from iotstack.config import CONFIG_NAME, load_config
from iotstack.errors import ConfigError, RuntimeFailure
from iotstack.plan import StackPlan
from iotstack.runtime.engine import connect
from iotstack.runtime.mounts import service_owners
from iotstack.runtime.project import COMPOSE_NAME, load_project
from iotstack.runtime.start import PullPolicy, UpResult, up_project
from iotstack.runtime.status import project_states
from iotstack.runtime.stop import down_project
from iotstack.variants import VARIANTS

log = logging.getLogger(__name__)

DEFAULT_VARIANT = "minimal"
DEFAULT_BACKEND = "victoriametrics"
# Services whose published port speaks something other than HTTP.
URL_SCHEMES = {"mosquitto": "mqtt"}


def run_up(
    stack_dir: Path,
    *,
    variant: str | None,
    pull: PullPolicy,
    force: bool = False,
    health_timeout_s: float | None = None,
) -> StackPlan:
    """Init if needed, render, start and wait healthy; print the summary."""
    if variant is not None and variant not in VARIANTS:
        raise ConfigError(
            f"unknown variant {variant!r}",
            path="--variant",
            fix=f"use one of: {', '.join(VARIANTS)}",
        )
    client = connect()

    _init_if_missing(stack_dir, variant)
    plan = _render(stack_dir)
    if not force:
        _check_memory_budget(plan)
    project = load_project(stack_dir)

    owners = service_owners(plan)
    result = up_project(
        client, project, pull=pull, owners=owners, health_timeout_s=health_timeout_s
    )
    _report_up(stack_dir, plan, result)
    return plan


def run_down(stack_dir: Path, *, volumes: bool) -> None:
    """Remove the stack's containers and network (and volumes if asked)."""
    client = connect()
    project = project_name(stack_dir)

    result = down_project(client, project, volumes=volumes)

    if not (result.containers or result.networks or result.volumes):
        console.info(f"nothing of project {project} is on the engine")
        return
    console.success(
        f"removed {len(result.containers)} containers, "
        f"{len(result.networks)} networks"
        + (f", {len(result.volumes)} volumes" if volumes else " (volumes kept)")
        + f" of project {project}"
    )


def run_status(stack_dir: Path, *, json_output: bool) -> None:
    """Show every service's state, health and ports."""
    client = connect()
    project = project_name(stack_dir)
    services = _expected_services(stack_dir)

    states = project_states(client, project, services)

    if json_output:
        console.emit_json(
            {"project": project, "services": [state.as_dict() for state in states]}
        )
        return
    console.table(
        f"Project {project}",
        ["service", "state", "health", "container", "ports"],
        [
            (
                s.service,
                s.state,
                s.health or "-",
                s.container_id or "-",
                ", ".join(s.ports) or "-",
            )
            for s in states
        ],
    )


def project_name(stack_dir: Path) -> str:
    """The compose project: from the rendered file, else from iotstack.yaml."""
    if (stack_dir / COMPOSE_NAME).exists():
        return load_project(stack_dir, use_binary=False).name
    if (stack_dir / CONFIG_NAME).exists():
        return load_config(stack_dir).project
    raise ConfigError(
        "no stack here (no iotstack.yaml or docker-compose.yml)",
        path=str(stack_dir),
        fix="pass --dir with the stack folder",
    )


def _expected_services(stack_dir: Path) -> list[str]:
    if (stack_dir / COMPOSE_NAME).exists():
        return list(load_project(stack_dir, use_binary=False).services)
    return []


def _init_if_missing(stack_dir: Path, variant: str | None) -> None:
    """A folder without iotstack.yaml gets the defaults; a given one must agree."""
    from iotstack.scaffold import init_stack

    if not (stack_dir / CONFIG_NAME).exists():
        stack_dir.mkdir(parents=True, exist_ok=True)
        path = init_stack(
            stack_dir, variant=variant or DEFAULT_VARIANT, backend=DEFAULT_BACKEND
        )
        console.success(f"wrote {path} with the defaults")
        return

    configured = load_config(stack_dir).variant
    if variant and variant != configured:
        raise ConfigError(
            f"--variant {variant} differs from `variant: {configured}`",
            path=str(stack_dir / CONFIG_NAME),
            fix="change the variant there, or leave out --variant",
        )


def _render(stack_dir: Path) -> StackPlan:
    """Render as `iotstack render` does: files the user edited are kept."""
    from iotstack.render import load_plan, render_stack
    from iotstack.report import show_render_report

    report = render_stack(stack_dir)
    show_render_report(stack_dir, report)
    return load_plan(stack_dir)[1]


def _check_memory_budget(plan: StackPlan) -> None:
    """Refuse a stack whose memory limits do not fit its host."""
    try:
        from iotstack.budget import check_fits
    except ImportError:
        log.debug("no memory budget module: the fit is not checked")
        return
    check_fits(plan)


def _report_up(stack_dir: Path, plan: StackPlan, result: UpResult) -> None:
    """Warnings, the summary table, and a one-line error naming what failed."""
    for warning in result.warnings:
        console.warn(warning)
    for name in result.removed_orphans:
        console.info(f"removed {name}: no longer part of the stack")

    rows = []
    for name, outcome in result.outcomes.items():
        url = _host_url(plan, name)
        state = "failed" if outcome.error else outcome.health
        rows.append((name, outcome.action.value, state, url))
    console.table(
        f"Stack {plan.config.project}", ["service", "action", "state", "url"], rows
    )

    if not result.failed:
        return
    for outcome in result.failed:
        if outcome.log_tail:
            console.warn(f"{outcome.name}: last log lines")
            console.log_tail(outcome.log_tail)

    causes = [o for o in result.failed if not o.error.startswith("not started")]
    root = (causes or result.failed)[0]
    running = [o.name for o in result.outcomes.values() if o.container_id]
    left = (
        f"; left in place: {', '.join(running)} (`iotstack down --dir {stack_dir}` "
        "removes them)"
        if running
        else ""
    )
    raise RuntimeFailure(f"{root.error}{left}")


def _host_url(plan: StackPlan, name: str) -> str:
    """Where the host reaches a service, with its protocol's scheme."""
    if not plan.has(name):
        return "-"
    url = plan.host_url(name)
    scheme = URL_SCHEMES.get(name)
    return f"{scheme}://{url.removeprefix('http://')}" if scheme else url
