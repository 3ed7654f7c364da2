"""The Docker Compose labels, so `docker compose ps/logs/down` see our containers.

Compose finds a project's containers, networks and volumes by these labels
alone; iotstack writes the same ones and reads them back to decide whether a
service changed since it was started.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from iotstack.runtime.project import Project, Service

PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
CONTAINER_NUMBER = "com.docker.compose.container-number"
ONEOFF = "com.docker.compose.oneoff"
CONFIG_HASH = "com.docker.compose.config-hash"
WORKING_DIR = "com.docker.compose.project.working_dir"
CONFIG_FILES = "com.docker.compose.project.config_files"
ENVIRONMENT_FILE = "com.docker.compose.project.environment_file"
DEPENDS_ON = "com.docker.compose.depends_on"
IMAGE = "com.docker.compose.image"
NETWORK = "com.docker.compose.network"
VOLUME = "com.docker.compose.volume"
VERSION = "com.docker.compose.version"

# The Compose release whose label format these follow (and that the tests run).
COMPOSE_VERSION = "2.40.3"


def project_filter(project: str) -> dict[str, list[str]]:
    """Engine list filter for the long-running containers of a project."""
    return {"label": [f"{PROJECT}={project}", f"{ONEOFF}=False"]}


def container_labels(
    project: Project, service: Service, config_hash: str, image_id: str
) -> dict[str, str]:
    """Every label Compose puts on a service's container."""
    depends = ",".join(
        f"{name}:{condition}:true"
        for name, condition in sorted(service.depends_on.items())
    )
    return {
        PROJECT: project.name,
        SERVICE: service.name,
        CONTAINER_NUMBER: "1",
        ONEOFF: "False",
        CONFIG_HASH: config_hash,
        WORKING_DIR: str(project.working_dir),
        CONFIG_FILES: str(project.config_file),
        ENVIRONMENT_FILE: str(project.working_dir / ".env"),
        DEPENDS_ON: depends,
        IMAGE: image_id,
        VERSION: COMPOSE_VERSION,
    }


def network_labels(project: Project, network: str) -> dict[str, str]:
    """Labels Compose expects on a project network it did not create itself."""
    return {PROJECT: project.name, NETWORK: network, VERSION: COMPOSE_VERSION}


def volume_labels(project: Project, volume: str) -> dict[str, str]:
    """Labels Compose expects on a project volume."""
    return {PROJECT: project.name, VOLUME: volume, VERSION: COMPOSE_VERSION}


def config_hash(service: Service, image_id: str, file_digests: dict[str, str]) -> str:
    """A digest of everything that shapes the container.

    Besides the service definition it covers the image id and the content of
    the generated files the service mounts, so a new image or a re-rendered
    config file recreates the container, while an unchanged one is left alone.
    """
    definition = dataclasses.asdict(service)
    definition.pop("raw")
    material: dict[str, Any] = {
        "service": definition,
        "image": image_id,
        "files": dict(sorted(file_digests.items())),
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
