"""Read a project's containers back from the engine: state, health, ports."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import docker

from iotstack.runtime.start import project_containers


@dataclass(frozen=True)
class ServiceState:
    """One service as the engine reports it."""

    service: str
    container: str
    container_id: str
    state: str
    health: str
    ports: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain data for `--json`."""
        return asdict(self)


def project_states(
    client: docker.DockerClient, project: str, services: list[str]
) -> list[ServiceState]:
    """The state of each expected service, plus any other project container."""
    containers = project_containers(client, project)
    names = list(dict.fromkeys([*services, *sorted(containers)]))
    return [_state(name, containers.get(name)) for name in names]


def _state(service: str, container: Any) -> ServiceState:
    if container is None:
        return ServiceState(service, "", "", "not created", "")
    attrs = container.attrs
    health = (attrs["State"].get("Health") or {}).get("Status", "")
    return ServiceState(
        service=service,
        container=container.name,
        container_id=container.id[:12],
        state=attrs["State"]["Status"],
        health=health,
        ports=_ports(attrs),
    )


def _ports(attrs: dict[str, Any]) -> list[str]:
    published = []
    for port, bindings in sorted((attrs["NetworkSettings"].get("Ports") or {}).items()):
        for binding in bindings or []:
            published.append(f"{binding['HostIp']}:{binding['HostPort']}->{port}")
    return published
