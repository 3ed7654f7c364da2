"""Where each service of a stack answers, and the credentials to use there.

URLs come from the rendered stack (`StackPlan.host_url`), `--endpoint NAME=URL`
overrides any of them, and credentials come from the stack's `.env`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from iotstack.config import CONFIG_NAME, StackConfig
from iotstack.envfile import ENV_NAME, mqtt_password_key, read_env
from iotstack.errors import ConfigError
from iotstack.plan import StackPlan

ENDPOINT_NAMES = (
    "victoriametrics",
    "influxdb",
    "iotdb",
    "prometheus",
    "mqtt",
    "nodered",
    "nginx",
    "grafana",
)
_SERVICE_OF = {"mqtt": "mosquitto"}


@dataclass(frozen=True)
class Endpoints:
    """Service URLs, `.env` values and the plan they were resolved from."""

    urls: dict[str, str]
    env: dict[str, str] = field(repr=False)
    plan: StackPlan | None = None

    def has(self, name: str) -> bool:
        """Whether an endpoint is known for `name`."""
        return name in self.urls

    def url(self, name: str) -> str:
        """The base URL of an endpoint, without a trailing slash."""
        return self.urls[name].rstrip("/")

    def secret(self, key: str, default: str = "") -> str:
        """A value from `.env` (never shown to the user)."""
        return self.env.get(key, default)

    @property
    def config(self) -> StackConfig:
        """The stack config, or the defaults when only endpoints were given."""
        return self.plan.config if self.plan else StackConfig()

    def mqtt_device_login(self) -> tuple[str, str]:
        """The first device user of the stack and its password from `.env`."""
        user = self.config.mqtt.users[0] if self.config.mqtt.users else "device"
        return user, self.secret(mqtt_password_key(user))


def parse_overrides(items: list[str]) -> dict[str, str]:
    """`NAME=URL` pairs from the command line; anything malformed is a ConfigError."""
    overrides: dict[str, str] = {}
    for item in items:
        name, sep, url = item.partition("=")
        name = name.strip()
        if not sep or not url.strip():
            raise ConfigError(
                f"--endpoint {item!r} is not NAME=URL",
                fix="e.g. --endpoint victoriametrics=http://10.0.0.5:8428",
            )
        if name not in ENDPOINT_NAMES:
            raise ConfigError(
                f"--endpoint names no known service {name!r}",
                fix=f"use one of: {', '.join(ENDPOINT_NAMES)}",
            )
        overrides[name] = _checked_url(name, url.strip())
    return overrides


def _checked_url(name: str, url: str) -> str:
    schemes = ("mqtt", "tcp") if name == "mqtt" else ("http", "https")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if (
        parsed is None
        or parsed.scheme not in schemes
        or not parsed.host
        or not 1 <= (parsed.port or 1) <= 65535
    ):
        raise ConfigError(
            f"--endpoint {name}={url} is not a {schemes[0]}:// URL with a host",
            fix=f"e.g. --endpoint {name}={schemes[0]}://127.0.0.1:PORT",
        )
    return url


def stack_urls(plan: StackPlan) -> dict[str, str]:
    """The URL of each endpoint the rendered stack publishes on the host."""
    urls: dict[str, str] = {}
    for name in ENDPOINT_NAMES:
        service = _SERVICE_OF.get(name, name)
        if not plan.has(service):
            continue
        url = plan.host_url(service)
        if name == "mqtt":
            url = "mqtt://" + url.removeprefix("http://")
        urls[name] = url
    return urls


def resolve_endpoints(stack_dir: Path, overrides: list[str]) -> Endpoints:
    """Endpoints of the stack in `stack_dir`, with `--endpoint` overrides applied.

    Without an `iotstack.yaml`, only the overridden endpoints are checked.
    """
    extra = parse_overrides(overrides)
    plan = None
    if (stack_dir / CONFIG_NAME).exists() or not extra:
        from iotstack.render import load_plan

        _, plan = load_plan(stack_dir)

    urls = stack_urls(plan) if plan else {}
    urls.update(extra)
    return Endpoints(urls=urls, env=read_env(stack_dir / ENV_NAME), plan=plan)
