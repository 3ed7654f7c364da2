"""Create a stack folder's `iotstack.yaml` from the commented template."""

from __future__ import annotations

from pathlib import Path

from iotstack.config import CONFIG_NAME, StackConfig
from iotstack.errors import ConfigError
from iotstack.files import write_atomic
from iotstack.plan import build_plan
from iotstack.render import jinja_environment
from iotstack.variants import VARIANTS

BACKENDS = ("victoriametrics", "influxdb")


def init_stack(
    stack_dir: Path, *, variant: str, backend: str, force: bool = False
) -> Path:
    """Write `iotstack.yaml`; an existing one is never replaced without `force`."""
    if variant not in VARIANTS:
        raise ConfigError(
            f"unknown variant {variant!r}",
            path="--variant",
            fix=f"use one of: {', '.join(VARIANTS)}",
        )
    if backend not in BACKENDS:
        raise ConfigError(
            f"unknown backend {backend!r}",
            path="--backend",
            fix=f"use one of: {', '.join(BACKENDS)}",
        )
    path = stack_dir / CONFIG_NAME
    if path.exists() and not force:
        raise ConfigError(
            "already exists",
            path=str(path),
            fix="edit it, or pass --force to start over",
        )

    config = StackConfig(variant=variant, backend=backend)
    plan = build_plan(config)
    text = (
        jinja_environment()
        .get_template("iotstack.yaml.j2")
        .render(plan=plan, config=config)
    )
    write_atomic(path, text)
    return path
