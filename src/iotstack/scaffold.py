"""Create a stack folder's `iotstack.yaml` from the commented template."""

from __future__ import annotations

from pathlib import Path

from iotstack.config import CONFIG_NAME, Host, StackConfig
from iotstack.data import load_profile
from iotstack.errors import ConfigError
from iotstack.files import write_atomic
from iotstack.plan import build_plan
from iotstack.render import jinja_environment
from iotstack.variants import VARIANTS

BACKENDS = ("victoriametrics", "influxdb")


def init_stack(
    stack_dir: Path,
    *,
    variant: str,
    backend: str,
    host: str | None = None,
    force: bool = False,
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

    profiles = load_profile("hosts")
    if host is None:
        host = detect_host_profile(profiles, _machine_ram_mib())
    elif host not in profiles:
        raise ConfigError(
            f"unknown host profile {host!r}",
            path="--host",
            fix=f"use one of: {', '.join(profiles)} (or edit host: in iotstack.yaml)",
        )
    config = StackConfig(variant=variant, backend=backend, host=Host(profile=host))
    plan = build_plan(config)
    text = (
        jinja_environment()
        .get_template("iotstack.yaml.j2")
        .render(plan=plan, config=config)
    )
    write_atomic(path, text)
    return path


def detect_host_profile(profiles: dict, ram_mib: int | None) -> str:
    """The largest host profile this machine's RAM covers (t3.micro if unknown).

    The kernel keeps part of the RAM for itself, so a 1 GiB VM reports a bit
    less than 1024 MiB; a profile counts as covered from 90 % of its size.
    """
    if ram_mib is None:
        return "t3.micro"
    covered = [name for name, p in profiles.items() if ram_mib >= p["ram_mib"] * 0.9]
    if not covered:
        return min(profiles, key=lambda name: profiles[name]["ram_mib"])
    return max(covered, key=lambda name: profiles[name]["ram_mib"])


def _machine_ram_mib() -> int | None:
    """MemTotal of this machine in MiB, or None where /proc/meminfo is absent."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        return None
    return None
