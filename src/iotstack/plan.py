"""Resolve a config and its variant into the concrete stack: services, ports, URLs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from iotstack.config import StackConfig, check_combination
from iotstack.data import load_profile
from iotstack.errors import ConfigError
from iotstack.variants import Variant, load_variant

METRICS_STORE = "metrics_store"


@dataclass(frozen=True)
class ServicePlan:
    """One service as it will run: image, ports, user and memory limit."""

    name: str
    image: str
    port: int
    host_port: int
    publish_address: str
    user: str
    memory_mib: int
    summary: str
    listen_address: str
    published: bool = True

    @property
    def local_address(self) -> str:
        """How the service reaches itself inside its own container (health checks)."""
        if self.listen_address in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return self.listen_address

    @property
    def uid(self) -> int:
        """The numeric user the image runs as."""
        return int(self.user.split(":")[0])

    @property
    def gid(self) -> int:
        """The numeric group the image runs as."""
        return int(self.user.split(":")[1])


@dataclass(frozen=True)
class HostPlan:
    """The machine's size and what it keeps for itself."""

    profile: str
    ram_mib: int
    cpus: float
    reserve_mib: int


@dataclass(frozen=True)
class StackPlan:
    """Everything the renderer, the runtime and the checks need to agree on."""

    config: StackConfig
    variant: Variant
    services: dict[str, ServicePlan]
    host: HostPlan
    metrics_store: str

    @property
    def host_network(self) -> bool:
        """Whether every service shares the host's network stack."""
        return self.config.network_mode == "host"

    def has(self, name: str) -> bool:
        """Whether a service is part of this stack."""
        return name in self.services

    def internal_host(self, name: str) -> str:
        """The host name other services use to reach `name`."""
        if name == "ainode" and self.config.ainode.host:
            return self.config.ainode.host
        return "127.0.0.1" if self.host_network else name

    def internal_url(self, name: str, path: str = "") -> str:
        """The URL other services of the stack use to reach `name`."""
        port = (
            self.services[name].port
            if name in self.services
            else _catalog()[name]["port"]
        )
        return f"http://{self.internal_host(name)}:{port}{path}"

    def host_url(self, name: str, path: str = "") -> str:
        """The URL the host uses to reach a service through its published port."""
        service = self.services[name]
        address = service.publish_address
        if address in ("0.0.0.0", "::", ""):
            address = "127.0.0.1"
        return f"http://{address}:{service.host_port}{path}"


def _catalog() -> dict[str, Any]:
    return load_profile("services")


def known_services() -> set[str]:
    """Every service name iotstack knows how to render."""
    return set(_catalog())


def build_plan(config: StackConfig) -> StackPlan:
    """Resolve the config into a plan; impossible combinations are ConfigErrors."""
    variant = load_variant(config.variant)
    metrics_store = config.backend
    required = [_resolve(name, metrics_store) for name in variant.required]
    unpublished = frozenset(
        name for name, entry in _catalog().items() if not entry.get("published", True)
    )
    check_combination(config, required, known_services(), unpublished)

    host = _host_plan(config)
    limits = _memory_limits(config, host)

    services: dict[str, ServicePlan] = {}
    for slot in variant.services:
        name = _resolve(slot, metrics_store)
        if not config.services.get(name, True):
            continue
        if name == "ainode" and config.ainode.host:
            continue
        services[name] = _service_plan(config, name, limits[name])

    _check_dependencies(config, services)
    _check_unique_ports(config, services)
    return StackPlan(config, variant, services, host, metrics_store)


def _resolve(slot: str, metrics_store: str) -> str:
    return metrics_store if slot == METRICS_STORE else slot


def _service_plan(config: StackConfig, name: str, memory_mib: int) -> ServicePlan:
    entry = _catalog()[name]
    host_port = config.ports.get(name, entry["port"])
    image = config.images.get(name, entry["image"])
    if config.registry and name not in config.images:
        image = f"{config.registry.rstrip('/')}/{image}"
    public = name in config.public_services
    publish_address = config.front_door_address if public else config.bind_address
    host_mode = config.network_mode == "host"
    return ServicePlan(
        name=name,
        image=image,
        port=host_port if host_mode else entry["port"],
        host_port=host_port,
        publish_address=publish_address,
        user=entry["user"],
        memory_mib=memory_mib,
        summary=entry["summary"],
        listen_address=publish_address if host_mode else "0.0.0.0",
        published=entry.get("published", True),
    )


def _host_plan(config: StackConfig) -> HostPlan:
    hosts = load_profile("hosts")
    if config.host.profile == "custom":
        base = _nearest_profile(hosts, config.host.ram_mib or 1024)
        return HostPlan(
            profile="custom",
            ram_mib=config.host.ram_mib or 1024,
            cpus=config.host.cpus or 1,
            reserve_mib=hosts[base]["reserve_mib"],
        )
    entry = hosts[config.host.profile]
    return HostPlan(
        profile=config.host.profile,
        ram_mib=config.host.ram_mib or entry["ram_mib"],
        cpus=config.host.cpus or entry["cpus"],
        reserve_mib=entry["reserve_mib"],
    )


def _nearest_profile(hosts: dict[str, Any], ram_mib: int) -> str:
    """The largest named profile that fits in `ram_mib` (the smallest if none)."""
    fitting = [name for name, h in hosts.items() if h["ram_mib"] <= ram_mib]
    if not fitting:
        return min(hosts, key=lambda name: hosts[name]["ram_mib"])
    return max(fitting, key=lambda name: hosts[name]["ram_mib"])


def _memory_limits(config: StackConfig, host: HostPlan) -> dict[str, int]:
    hosts = load_profile("hosts")
    profile = host.profile
    if profile == "custom":
        profile = _nearest_profile(hosts, host.ram_mib)
    limits = dict(hosts[profile]["limits"])
    limits.update(config.host.memory)
    return limits


def _check_dependencies(config: StackConfig, services: dict[str, ServicePlan]) -> None:
    """Services that feed others need those others (or an external address)."""
    if "ainode" in services and "iotdb" not in services:
        raise ConfigError(
            "`services.ainode` needs IoTDB, which is switched off",
            path=config.where("services", "iotdb"),
            fix="turn IoTDB on, or set `services.ainode: false`",
        )
    if "nodered" in services and "mosquitto" not in services:
        raise ConfigError(
            "`services.nodered` reads from MQTT, but mosquitto is switched off",
            path=config.where("services", "mosquitto"),
            fix="turn mosquitto on, or set `services.nodered: false`",
        )


def _check_unique_ports(config: StackConfig, services: dict[str, ServicePlan]) -> None:
    seen: dict[tuple[str, int], str] = {}
    for service in services.values():
        if not service.published:
            continue
        key = (service.publish_address, service.host_port)
        if key in seen:
            raise ConfigError(
                f"`ports.{service.name}` {service.host_port} is also used by "
                f"{seen[key]}",
                path=config.where("ports", service.name),
                fix="give each service its own port",
            )
        seen[key] = service.name
