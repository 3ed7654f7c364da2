"""Take a project down: containers and networks, volumes only when asked."""

from __future__ import annotations

from dataclasses import dataclass, field

import docker
import docker.errors

from iotstack.runtime import labels
from iotstack.runtime.start import STOP_TIMEOUT_S


@dataclass
class DownResult:
    """What `down` removed."""

    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)


def down_project(
    client: docker.DockerClient, project: str, *, volumes: bool = False
) -> DownResult:
    """Remove every container of the project (one-off ones too), then its networks."""
    result = DownResult()
    selector = {"label": [f"{labels.PROJECT}={project}"]}

    for container in client.containers.list(all=True, filters=selector):
        if container.status == "running":
            container.stop(timeout=STOP_TIMEOUT_S)
        container.remove(v=False, force=True)
        result.containers.append(container.name)

    for network in client.networks.list(filters=selector):
        network.remove()
        result.networks.append(network.name)

    if volumes:
        for volume in client.volumes.list(filters=selector):
            volume.remove(force=True)
            result.volumes.append(volume.name)
    return result
