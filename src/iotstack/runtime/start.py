"""Start a compose project on the engine, the way `docker compose up --wait` does.

The order of work keeps failures cheap: host ports and images are checked
before anything is created, so a conflict leaves nothing half-started. Then
bind-mount sources, the network and named volumes are made, and each service
starts as soon as the services it depends on meet their condition, so
independent services start in parallel.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container
from docker.types import LogConfig
from docker.types import Mount as EngineMount
from docker.utils import parse_repository_tag

from iotstack import console
from iotstack.errors import ConfigError, RuntimeFailure
from iotstack.runtime import labels
from iotstack.runtime.engine import is_local
from iotstack.runtime.mounts import (
    Owner,
    generated_files,
    mounted_file_digests,
    prepare_bind_mounts,
)
from iotstack.runtime.policy import PullPolicy
from iotstack.runtime.project import PortBinding, Project, Service

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 20
STOP_TIMEOUT_S = 10
POLL_S = 0.5
# Slack on top of a health check's own worst case before giving up on it.
HEALTH_SLACK_S = 15.0
COMPLETION_TIMEOUT_S = 600.0


class Action(StrEnum):
    """What `up` does with one service."""

    create = "created"
    recreate = "recreated"
    start = "started"
    keep = "unchanged"


@dataclass
class ServiceOutcome:
    """How one service ended up after `up`."""

    name: str
    action: Action
    container_id: str = ""
    health: str = ""
    error: str = ""
    log_tail: str = ""


@dataclass
class UpResult:
    """Everything `up` did, service by service."""

    outcomes: dict[str, ServiceOutcome] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    removed_orphans: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[ServiceOutcome]:
        return [outcome for outcome in self.outcomes.values() if outcome.error]


def up_project(
    client: docker.DockerClient,
    project: Project,
    *,
    pull: PullPolicy = PullPolicy.missing,
    owners: dict[str, Owner] | None = None,
    health_timeout_s: float | None = None,
) -> UpResult:
    """Bring every service of the project up and healthy; raise on failure."""
    order = dependency_order(project)
    existing = project_containers(client, project.name)

    check_ports_free(project, existing)
    images = ensure_images(client, project, pull)

    result = UpResult()
    result.warnings = prepare_bind_mounts(
        project, owners or {}, generated_files(project)
    )
    hashes = {
        name: labels.config_hash(
            service, images[name], mounted_file_digests(project, service)
        )
        for name, service in project.services.items()
    }
    actions = _decide(project, existing, hashes)

    result.removed_orphans = _remove_orphans(project, existing)
    _ensure_networks(client, project)
    _ensure_volumes(client, project)

    starter = _Starter(client, project, existing, hashes, images, health_timeout_s)
    result.outcomes = starter.run(order, actions)
    return result


def dependency_order(project: Project) -> list[str]:
    """Services sorted so each comes after what it depends on; cycles are errors."""
    order: list[str] = []
    visiting: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in order:
            return
        if name in visiting:
            cycle = " -> ".join([*path, name])
            raise ConfigError(f"depends_on forms a cycle: {cycle}")
        visiting.add(name)
        for dependency in project.services[name].depends_on:
            if dependency not in project.services:
                raise ConfigError(
                    f"service {name} depends on {dependency}, which is not in the "
                    "stack",
                    fix="run `iotstack render` again",
                )
            visit(dependency, [*path, name])
        visiting.discard(name)
        order.append(name)

    for name in project.services:
        visit(name, [])
    return order


def project_containers(
    client: docker.DockerClient, project: str
) -> dict[str, Container]:
    """The project's service containers on the engine, by service name."""
    found: dict[str, Container] = {}
    for container in client.containers.list(
        all=True, filters=labels.project_filter(project)
    ):
        found[container.labels.get(labels.SERVICE, container.name)] = container
    return found


def check_ports_free(project: Project, existing: dict[str, Container]) -> None:
    """Every host port the stack publishes is free, or held by the stack itself."""
    if not is_local():
        log.debug("engine is remote: its host ports cannot be checked from here")
        return

    ours = {
        (binding.get("HostIp") or "0.0.0.0", int(binding["HostPort"]))
        for container in existing.values()
        for bindings in (
            container.attrs["HostConfig"].get("PortBindings") or {}
        ).values()
        for binding in bindings or []
        if binding.get("HostPort")
    }
    for service in project.services.values():
        for port in service.ports:
            address = port.host_ip or "0.0.0.0"
            if (address, port.published) in ours:
                continue
            if not _port_free(address, port.published, port.protocol):
                raise ConfigError(
                    f"port {address}:{port.published} for {service.name} is already "
                    "in use on this host; nothing was started",
                    fix=f"stop what holds it, or set `ports.{service.name}` to a free "
                    "port in iotstack.yaml",
                )


def _port_free(address: str, port: int, protocol: str) -> bool:
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, kind) as probe:
        # A port in TIME_WAIT is free for the engine; only a live holder counts.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL:
                raise ConfigError(
                    f"{address} is not an address of this host",
                    fix="use 127.0.0.1, 0.0.0.0 or one of this host's addresses "
                    "for bind_address / front_door_address in iotstack.yaml",
                ) from None
            return False
    return True


def ensure_images(
    client: docker.DockerClient, project: Project, policy: PullPolicy
) -> dict[str, str]:
    """Each service's image id, pulling as the policy says; missing is an error."""
    wanted = sorted({service.image for service in project.services.values()})
    present = {image: _image_id(client, image) for image in wanted}

    if policy is PullPolicy.never:
        for image, image_id in present.items():
            if image_id is None:
                users = _services_using(project, image)
                raise ConfigError(
                    f"image {image} for {users} is not on this engine and "
                    "--pull never forbids pulling it; nothing was started",
                    fix="load or build it first, or run with --pull missing",
                )
    else:
        to_pull = [
            image
            for image in wanted
            if policy is PullPolicy.always or present[image] is None
        ]
        if to_pull:
            _pull_all(client, project, to_pull)
            present = {image: _image_id(client, image) for image in wanted}

    return {
        name: str(present[service.image]) for name, service in project.services.items()
    }


def _pull_all(client: docker.DockerClient, project: Project, images: list[str]):
    """Pull images one after another with a progress bar each."""
    with console.pull_progress() as progress:
        for image in images:
            task = progress.add_task(f"pull {image}", total=None)
            try:
                _pull_one(
                    client,
                    image,
                    lambda done, total, t=task: progress.update(
                        t, completed=done, total=total or None
                    ),
                )
            except (docker.errors.APIError, RuntimeFailure) as exc:
                users = _services_using(project, image)
                reason = getattr(exc, "explanation", None) or str(exc)
                raise RuntimeFailure(
                    f"could not pull {image} for {users}: {reason} — check the "
                    "image name and registry in iotstack.yaml (`images:`, "
                    "`registry:`); nothing was started"
                ) from None
            progress.update(task, description=f"pulled {image}")


def _pull_one(
    client: docker.DockerClient, image: str, report: Callable[[int, int], None]
) -> None:
    """Stream one pull, reporting bytes done over all layers."""
    repository, tag = parse_repository_tag(image)
    layers: dict[str, tuple[int, int]] = {}
    for chunk in client.api.pull(
        repository, tag=tag or "latest", stream=True, decode=True
    ):
        if "error" in chunk:
            raise RuntimeFailure(str(chunk["error"]))
        detail = chunk.get("progressDetail") or {}
        if chunk.get("id") and detail.get("total"):
            layers[chunk["id"]] = (detail.get("current", 0), detail["total"])
            report(
                sum(d for d, _ in layers.values()), sum(t for _, t in layers.values())
            )


def _image_id(client: docker.DockerClient, image: str) -> str | None:
    try:
        return str(client.images.get(image).id)
    except docker.errors.ImageNotFound:
        return None


def _services_using(project: Project, image: str) -> str:
    return ", ".join(
        name for name, service in project.services.items() if service.image == image
    )


def _decide(
    project: Project, existing: dict[str, Container], hashes: dict[str, str]
) -> dict[str, Action]:
    """Create what is missing, recreate what changed, keep the rest."""
    actions: dict[str, Action] = {}
    for name in project.services:
        container = existing.get(name)
        if container is None:
            actions[name] = Action.create
        elif container.labels.get(labels.CONFIG_HASH) != hashes[name]:
            actions[name] = Action.recreate
        elif container.status != "running":
            actions[name] = Action.start
        else:
            actions[name] = Action.keep
    return actions


def _remove_orphans(project: Project, existing: dict[str, Container]) -> list[str]:
    """Remove containers of services the stack no longer has (switched off)."""
    removed = []
    for name, container in list(existing.items()):
        if name not in project.services:
            container.stop(timeout=STOP_TIMEOUT_S)
            container.remove(v=False)
            del existing[name]
            removed.append(name)
    return removed


def _ensure_networks(client: docker.DockerClient, project: Project) -> None:
    for network in project.networks:
        name = project.network_name(network)
        if not client.networks.list(names=[name]):
            client.networks.create(
                name, driver="bridge", labels=labels.network_labels(project, network)
            )


def _ensure_volumes(client: docker.DockerClient, project: Project) -> None:
    for volume in project.volumes:
        name = project.volume_name(volume)
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            client.volumes.create(name, labels=labels.volume_labels(project, volume))


class _Starter:
    """Starts services as their dependencies allow, in parallel, and waits."""

    def __init__(
        self,
        client: docker.DockerClient,
        project: Project,
        existing: dict[str, Container],
        hashes: dict[str, str],
        images: dict[str, str],
        health_timeout_s: float | None,
    ) -> None:
        self.client = client
        self.project = project
        self.existing = existing
        self.hashes = hashes
        self.images = images
        self.health_timeout_s = health_timeout_s
        self.started: dict[str, Future[Container]] = {}
        self.ready: dict[str, Future[Container]] = {}
        self.run_to_completion = {
            dependency
            for service in project.services.values()
            for dependency, condition in service.depends_on.items()
            if condition == "service_completed_successfully"
        }

    def run(
        self, order: list[str], actions: dict[str, Action]
    ) -> dict[str, ServiceOutcome]:
        """Start every service; each waits only for its own dependencies."""
        self.started = {name: Future() for name in order}
        self.ready = {name: Future() for name in order}
        outcomes = {name: ServiceOutcome(name, actions[name]) for name in order}

        with (
            console.service_progress() as progress,
            ThreadPoolExecutor(max_workers=len(order) or 1) as pool,
        ):
            tasks = {
                name: progress.add_task("waiting", service=name, total=1)
                for name in order
            }
            for name in order:
                pool.submit(
                    self._bring_up,
                    outcomes[name],
                    lambda text, t=tasks[name]: progress.update(t, description=text),
                )
            for future in self.ready.values():
                _ = future.exception()
            for task in tasks.values():
                progress.update(task, completed=1)
        return outcomes

    def _bring_up(self, outcome: ServiceOutcome, say: Callable[[str], None]) -> None:
        """One service: wait for dependencies, start, wait for its health."""
        name = outcome.name
        service = self.project.services[name]
        try:
            say(
                "waiting for " + ", ".join(service.depends_on)
                if service.depends_on
                else "starting"
            )
            self._wait_dependencies(service)

            say(f"{outcome.action.value.removesuffix('d')}ing")
            container = self._container_for(service, outcome.action)
            outcome.container_id = container.id
            self.started[name].set_result(container)

            say("waiting until healthy" if service.healthcheck else "running")
            outcome.health = self._wait_ready(service, container)
            self.ready[name].set_result(container)
            say(f"[green]{outcome.health}[/green] ({outcome.action.value})")
        except Exception as exc:
            outcome.error = str(exc)
            outcome.log_tail = getattr(exc, "log_tail", "")
            say(f"[red]failed[/red]: {outcome.error}")
            for futures in (self.started, self.ready):
                if not futures[name].done():
                    futures[name].set_exception(exc)

    def _wait_dependencies(self, service: Service) -> None:
        for dependency, condition in service.depends_on.items():
            source = self.started if condition == "service_started" else self.ready
            try:
                source[dependency].result()
            except Exception:
                raise _DependencyFailed(
                    f"not started: {dependency} did not become {_wanted(condition)}"
                ) from None

    def _container_for(self, service: Service, action: Action) -> Container:
        """The service's container after applying the action."""
        current = self.existing.get(service.name)
        if action is Action.keep and current is not None:
            return current
        if action is Action.start and current is not None:
            current.start()
            return current
        if current is not None:
            current.stop(timeout=STOP_TIMEOUT_S)
            current.remove(v=False)

        container = self.client.containers.create(**self._create_options(service))
        for extra in service.networks[1:]:
            self.client.networks.get(self.project.network_name(extra)).connect(
                container, aliases=[service.name]
            )
        container.start()
        return container

    def _create_options(self, service: Service) -> dict[str, Any]:
        """The SDK arguments that make a container from the service definition."""
        project = self.project
        name = project.container_name(service.name)
        options: dict[str, Any] = {
            "image": service.image,
            "name": name,
            "command": service.command,
            "entrypoint": service.entrypoint,
            "environment": service.environment,
            "labels": labels.container_labels(
                project, service, self.hashes[service.name], self.images[service.name]
            ),
            "ports": _port_map(service.ports),
            "mounts": [_engine_mount(project, mount) for mount in service.mounts],
            "user": service.user,
            "mem_limit": service.mem_limit,
            "memswap_limit": service.memswap_limit,
            "detach": True,
        }
        if service.restart != "no":
            options["restart_policy"] = {"Name": service.restart}
        if service.logging:
            options["log_config"] = LogConfig(
                type=service.logging.get("driver", "json-file"),
                config=service.logging.get("options") or {},
            )
        if service.healthcheck:
            options["healthcheck"] = service.healthcheck.engine_spec()
        if service.network_mode:
            options["network_mode"] = service.network_mode
        elif service.networks:
            network = project.network_name(service.networks[0])
            options["network"] = network
            options["networking_config"] = {
                network: self.client.api.create_endpoint_config(
                    aliases=[service.name, name]
                )
            }
        return {key: value for key, value in options.items() if value is not None}

    def _wait_ready(self, service: Service, container: Container) -> str:
        """Wait for `healthy` (or `running` without a health check)."""
        if service.name in self.run_to_completion:
            return self._wait_completed(service, container)
        if service.healthcheck is None:
            container.reload()
            if container.status not in ("running", "created"):
                raise _failure(service, container, f"is {container.status}")
            return "running"

        limit = service.healthcheck.longest_wait_s() + HEALTH_SLACK_S
        if self.health_timeout_s is not None:
            limit = self.health_timeout_s
        deadline = time.monotonic() + limit
        health = "starting"
        while time.monotonic() < deadline:
            container.reload()
            state = container.attrs["State"]
            health = (state.get("Health") or {}).get("Status", "none")
            if health == "healthy":
                return health
            if health == "unhealthy":
                raise _failure(service, container, "is unhealthy")
            if state["Status"] in ("exited", "dead"):
                code = state.get("ExitCode")
                raise _failure(service, container, f"exited with code {code}")
            time.sleep(POLL_S)
        raise _failure(service, container, f"was still {health} after {limit:.0f} s")

    def _wait_completed(self, service: Service, container: Container) -> str:
        """Wait for a one-shot service to exit with code 0."""
        limit = self.health_timeout_s or COMPLETION_TIMEOUT_S
        try:
            status = container.wait(timeout=limit)
        except Exception:
            raise _failure(
                service, container, f"did not finish in {limit:.0f} s"
            ) from None
        if status.get("StatusCode") != 0:
            code = status.get("StatusCode")
            raise _failure(service, container, f"exited with code {code}")
        return "completed"


class _DependencyFailed(RuntimeFailure):
    """A service was not started because a dependency failed."""


class _ServiceFailed(RuntimeFailure):
    """A service started but did not become healthy; carries its log tail."""

    def __init__(self, message: str, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def _failure(service: Service, container: Container, what: str) -> _ServiceFailed:
    tail = container.logs(tail=LOG_TAIL_LINES).decode(errors="replace").rstrip()
    return _ServiceFailed(f"{service.name} {what}", tail)


def _wanted(condition: str) -> str:
    return {
        "service_started": "started",
        "service_healthy": "healthy",
        "service_completed_successfully": "completed",
    }.get(condition, condition)


def _port_map(ports: list[PortBinding]) -> dict[str, Any]:
    mapping: dict[str, list[tuple[str, int]]] = {}
    for port in ports:
        key = f"{port.target}/{port.protocol}"
        mapping.setdefault(key, []).append((port.host_ip or "0.0.0.0", port.published))
    return {
        key: bindings[0] if len(bindings) == 1 else bindings
        for key, bindings in mapping.items()
    }


def _engine_mount(project: Project, mount: Any) -> EngineMount:
    source = mount.source
    if mount.type == "volume" and source in project.volumes:
        source = project.volume_name(source)
    return EngineMount(
        target=mount.target, source=source, type=mount.type, read_only=mount.read_only
    )
