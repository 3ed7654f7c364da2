"""The user's stack description, `iotstack.yaml`: load, validate, write."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
)

from iotstack.data import compose_yaml, parse_yaml
from iotstack.errors import ConfigError

CONFIG_NAME = "iotstack.yaml"

Variant = Literal["minimal", "iotdb-centric", "edge-first"]
Backend = Literal["victoriametrics", "influxdb"]
HostProfile = Literal["t3.micro", "t3.small", "t3.medium", "custom"]

_DURATION = re.compile(r"^\d+(ms|s|m|h|d|w|y)$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST_NAME = rf"{_LABEL}(?:\.{_LABEL})*"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REGISTRY = re.compile(rf"^{_HOST_NAME}(?::\d+)?(?:/{_PATH_PART})*/?$")
_IMAGE = re.compile(
    rf"^(?:{_HOST_NAME}(?::\d+)?/)?{_PATH_PART}(?:/{_PATH_PART})*"
    r"(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


def _not_a_boolean(value: Any) -> Any:
    """Pydantic would read `true` as 1: a yes/no is never a port or a size."""
    if isinstance(value, bool):
        raise ValueError(f"{str(value).lower()} is not a number")
    return value


def _image_reference(image: str) -> str:
    """An image name Docker accepts, so a typo fails here and not at pull time."""
    if not _IMAGE.match(image):
        raise ValueError(
            f"{image!r} is not an image reference like grafana/grafana:12.4.5 "
            "(lower case, no spaces)"
        )
    return image


WholeNumber = Annotated[int, BeforeValidator(_not_a_boolean)]
# Docker refuses memory limits under 6 MiB, and 0 would mean "no limit".
MemoryMiB = Annotated[int, BeforeValidator(_not_a_boolean), Field(ge=6)]
ImageReference = Annotated[str, AfterValidator(_image_reference)]


class Strict(BaseModel):
    """A config section: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Host(Strict):
    """The machine the stack runs on; sizes every memory limit."""

    profile: HostProfile = "t3.micro"
    ram_mib: int | None = Field(default=None, ge=256)
    cpus: float | None = Field(default=None, gt=0)
    memory: dict[str, MemoryMiB] = Field(default_factory=dict)


class Mqtt(Strict):
    """Broker access: a generated password file unless anonymous is asked for."""

    anonymous: bool = False
    users: list[str] = Field(default_factory=lambda: ["device"])

    @field_validator("users")
    @classmethod
    def _user_names(cls, users: list[str]) -> list[str]:
        keys: dict[str, str] = {}
        for user in users:
            if not _NAME.match(user):
                raise ValueError(f"user {user!r} must match [a-z0-9][a-z0-9_-]*")
            if user == "nodered":
                raise ValueError(
                    "`nodered` is the stack's own broker login; pick another"
                )
            # Each user's password lives in .env under MQTT_<NAME>_PASSWORD.
            key = re.sub(r"[^a-z0-9]", "_", user)
            if key in keys:
                raise ValueError(
                    f"users {keys[key]!r} and {user!r} would share a password"
                )
            keys[key] = user
        return users


# VictoriaMetrics keeps at least a day; shorter values would leave Prometheus'
# own head block or IoTDB's time partitions half-expired.
_SHORTEST_RETENTION = {"metrics": "1d", "prometheus": "2h", "iotdb": "1h"}


class Retention(Strict):
    """How long each store keeps data."""

    metrics: str = "30d"
    prometheus: str = "2d"
    iotdb: str = "90d"

    @field_validator("metrics", "prometheus", "iotdb")
    @classmethod
    def _duration(cls, value: str, info) -> str:
        if not _DURATION.match(value):
            raise ValueError(f"{value!r} is not a duration like 30d, 12h or 2w")
        shortest = _SHORTEST_RETENTION[info.field_name]
        if duration_ms(value) < duration_ms(shortest):
            raise ValueError(
                f"{value!r} is shorter than {shortest}, the least it takes"
            )
        if info.field_name == "metrics" and value[-1] not in "hdwy":
            raise ValueError(f"{value!r}: VictoriaMetrics takes h, d, w or y")
        return value


class Grafana(Strict):
    """Grafana behind Nginx."""

    sub_path: str = "/grafana"

    @field_validator("sub_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not re.match(r"^/[A-Za-z0-9_-]+$", value):
            raise ValueError("must look like /grafana (one path segment)")
        return value


class RawRule(Strict):
    """Keep or drop raw samples whose topic matches an MQTT filter."""

    topic: str
    keep: bool

    @field_validator("topic")
    @classmethod
    def _filter(cls, value: str) -> str:
        levels = value.split("/")
        misplaced = "#" in levels[:-1] or any(
            ("#" in level or "+" in level) and level not in ("#", "+")
            for level in levels
        )
        if not value or misplaced:
            raise ValueError(
                f"{value!r} is not an MQTT topic filter ('+' stands alone in a "
                "level, '#' only at the end), e.g. iot/raw/+/+/temperature"
            )
        return value


class Edge(Strict):
    """Edge-first routing choices."""

    raw_rules: list[RawRule] = Field(
        default_factory=lambda: [RawRule(topic="iot/raw/#", keep=True)]
    )
    anomaly_threshold: float = 0.8


class AiNode(Strict):
    """Where AINode runs: in this stack, or on another host."""

    host: str | None = None

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(_HOST_NAME, value):
            raise ValueError(f"{value!r} is not a host name or IPv4 address")
        return value


class StackConfig(Strict):
    """The whole of `iotstack.yaml`."""

    variant: Variant = "minimal"
    backend: Backend = "victoriametrics"
    project: str = "iotstack"
    host: Host = Field(default_factory=Host)
    network_mode: Literal["bridge", "host"] = "bridge"
    bind_address: str = "127.0.0.1"
    front_door_address: str = "0.0.0.0"
    public_services: list[str] = Field(default_factory=lambda: ["nginx"])
    registry: str = ""
    images: dict[str, ImageReference] = Field(default_factory=dict)
    ports: dict[str, WholeNumber] = Field(default_factory=dict)
    services: dict[str, bool] = Field(default_factory=dict)
    mqtt: Mqtt = Field(default_factory=Mqtt)
    retention: Retention = Field(default_factory=Retention)
    grafana: Grafana = Field(default_factory=Grafana)
    edge: Edge = Field(default_factory=Edge)
    ainode: AiNode = Field(default_factory=AiNode)
    _source: str = PrivateAttr(default=CONFIG_NAME)
    _node: Any = PrivateAttr(default=None)

    def where(self, *key: str | int) -> str:
        """`file:line` of a setting (or its nearest parent) for error messages."""
        line = _line_of(self._node, key) if self._node is not None else None
        return f"{self._source}:{line}" if line else self._source

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lower case letters, digits, - or _")
        return value

    @field_validator("bind_address", "front_door_address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an IPv4 address like 127.0.0.1 or 0.0.0.0"
            ) from None
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str) -> str:
        if value and not _REGISTRY.match(value):
            raise ValueError(
                f"{value!r} is not a registry prefix like registry.local:5000 "
                "(no scheme, no spaces)"
            )
        return value

    @field_validator("ports")
    @classmethod
    def _ports(cls, ports: dict[str, int]) -> dict[str, int]:
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise ValueError(f"{name}: {port} is not a port number (1-65535)")
        return ports


_UNIT_MS = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 604_800_000,
    "y": 31_536_000_000,
}


def duration_ms(value: str) -> int:
    """A validated duration such as `30d` in milliseconds."""
    number, unit = re.match(r"^(\d+)([a-z]+)$", value).groups()
    return int(number) * _UNIT_MS[unit]


def config_path(stack_dir: Path) -> Path:
    """Where the stack's config lives."""
    return stack_dir / CONFIG_NAME


def load_config(stack_dir: Path) -> StackConfig:
    """Read and validate `iotstack.yaml`; any problem is a one-line ConfigError."""
    path = config_path(stack_dir)
    if not path.exists():
        raise ConfigError(
            "no stack config here",
            path=str(path),
            fix=f"run `iotstack init --dir {stack_dir}` first",
        )

    text = path.read_text(encoding="utf-8")
    try:
        data = parse_yaml(text)
        node = compose_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"YAML syntax error: {problem}",
            path=where,
            fix="fix the indentation or quoting on that line",
        ) from None
    if data is None:
        raise ConfigError(
            "is empty",
            path=str(path),
            fix=f"write your settings into it, or run `iotstack init --dir {stack_dir} "
            "--force` for a commented one",
        )
    if not isinstance(data, dict):
        raise ConfigError("must be a mapping of settings", path=str(path))
    _refuse_duplicate_keys(path, node)

    try:
        config = StackConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(path, node, exc) from None

    config._source = str(path)
    config._node = node
    return config


def _refuse_duplicate_keys(path: Path, node: Any, parent: str = "") -> None:
    """A key given twice would silently lose its first value: name the second."""
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(path, item, parent)
    if not isinstance(node, yaml.MappingNode):
        return

    seen: set[str] = set()
    for key_node, value_node in node.value:
        key = f"{parent}.{key_node.value}" if parent else str(key_node.value)
        if key in seen:
            raise ConfigError(
                f"`{key}` is set twice",
                path=f"{path}:{key_node.start_mark.line + 1}",
                fix="keep one of the two",
            )
        seen.add(key)
        _refuse_duplicate_keys(path, value_node, key)


def _config_error(path: Path, node: Any, exc: ValidationError) -> ConfigError:
    """Turn the first validation error into one line with file, line and key."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    key = ".".join(loc) or "(top level)"
    line = _line_of(node, first["loc"])
    where = f"{path}:{line}" if line else str(path)

    if first["type"] == "extra_forbidden":
        return ConfigError(
            f"unknown key `{key}`",
            path=where,
            fix="remove it or check its spelling (see `iotstack init` comments)",
        )
    if first["type"] == "literal_error":
        allowed = first.get("ctx", {}).get("expected", "")
        return ConfigError(
            f"`{key}` has value {first.get('input')!r}",
            path=where,
            fix=f"use one of {allowed}",
        )
    message = first["msg"].removeprefix("Value error, ")
    fix = _TYPE_FIXES.get(first["type"], "correct the value")
    return ConfigError(f"`{key}`: {message}", path=where, fix=fix)


_TYPE_FIXES = {
    "int_parsing": "use a whole number, e.g. 8080",
    "int_type": "use a whole number, e.g. 8080",
    "greater_than_equal": "use a larger number",
    "float_parsing": "use a number, e.g. 0.8",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
    "string_type": "use a quoted text value",
    "list_type": "use a list, e.g. [a, b]",
    "dict_type": "use a mapping, e.g. {name: value}",
    "model_type": "use a mapping of the settings shown by `iotstack init`",
}


def _line_of(node: Any, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at `loc`, or of its nearest parent."""
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                return line
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def check_combination(
    config: StackConfig,
    required: list[str],
    known: set[str],
    unpublished: frozenset[str] = frozenset(),
):
    """Reject settings that name unknown services or switch off required ones."""
    for section in ("images", "ports", "services"):
        for name in getattr(config, section):
            if name not in known:
                raise ConfigError(
                    f"`{section}.{name}` names no service",
                    path=config.where(section, name),
                    fix=f"use one of: {', '.join(sorted(known))}",
                )
    for name in config.public_services:
        if name not in known or name in unpublished:
            raise ConfigError(
                f"`public_services` names {name!r}, which has no published port",
                path=config.where("public_services"),
                fix=f"use one of: {', '.join(sorted(known - unpublished))}",
            )
    for name in config.host.memory:
        if name not in known:
            raise ConfigError(
                f"`host.memory.{name}` names no service",
                path=config.where("host", "memory", name),
                fix=f"use one of: {', '.join(sorted(known))}",
            )
    for name in required:
        if config.services.get(name) is False:
            raise ConfigError(
                f"`services.{name}: false` is impossible in variant {config.variant}",
                path=config.where("services", name),
                fix=f"remove it, or pick a variant that does not need {name}",
            )
    if config.host.profile == "custom" and not (
        config.host.ram_mib and config.host.cpus
    ):
        raise ConfigError(
            "`host.profile: custom` needs `host.ram_mib` and `host.cpus`",
            path=config.where("host", "profile"),
            fix="add both, e.g. ram_mib: 1536 and cpus: 2",
        )
