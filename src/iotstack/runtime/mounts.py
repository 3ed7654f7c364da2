"""Bind-mount sources made ready before any container starts (cases C02, C05).

Docker creates a missing bind-mount source as a root-owned directory. That
turns a missing config file into a directory the service cannot read (C05),
and leaves a service that runs as another user unable to write its folder
(C02). So every source is checked or created here first, owned by the user
the service's image runs as.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from iotstack.errors import RuntimeFailure
from iotstack.manifest import Manifest, checksum
from iotstack.plan import StackPlan
from iotstack.runtime.project import Project, Service, load_project

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Owner:
    """The numeric user and group a service's image runs as."""

    uid: int
    gid: int

    @classmethod
    def parse(cls, user: str) -> Owner:
        """Read `uid:gid` (or `uid`) as found in the service catalogue."""
        uid, _, gid = user.partition(":")
        return cls(int(uid), int(gid or uid))


def service_owners(plan: StackPlan) -> dict[str, Owner]:
    """The user each service's image runs as, from the service catalogue."""
    return {name: Owner.parse(spec.user) for name, spec in plan.services.items()}


def prepare_rendered_stack(stack_dir: Path, plan: StackPlan) -> list[str]:
    """Make a freshly rendered stack's bind mounts ready for any way of starting it.

    Run after every render, so plain `docker compose up` works on the folder as
    well as `iotstack up`; returns warnings where ownership cannot be fixed.
    """
    project = load_project(stack_dir, use_binary=False)
    return prepare_bind_mounts(project, service_owners(plan), generated_files(project))


def prepare_bind_mounts(
    project: Project, owners: dict[str, Owner], generated: set[str]
) -> list[str]:
    """Create or fix every bind-mount source; returns warnings for the user."""
    warnings: list[str] = []
    for service in project.services.values():
        owner = owners.get(service.name)
        for mount in service.mounts:
            if mount.type != "bind":
                continue
            source = Path(mount.source)
            _ensure_source(project, service, source, generated)
            if owner is not None:
                warnings.extend(_own(source, owner, service, mount.read_only))
    return warnings


def mounted_file_digests(project: Project, service: Service) -> dict[str, str]:
    """Checksums of the generated files a service mounts, by stack path."""
    manifest = Manifest.load(project.working_dir)
    digests: dict[str, str] = {}
    for mount in service.mounts:
        if mount.type != "bind":
            continue
        source = Path(mount.source)
        for relative in manifest.files:
            path = project.working_dir / relative
            if path == source or source in path.parents:
                digests[relative] = _digest(path)
    return digests


def generated_files(project: Project) -> set[str]:
    """Absolute paths of the files the last render wrote."""
    manifest = Manifest.load(project.working_dir)
    return {str(project.working_dir / relative) for relative in manifest.files}


def _ensure_source(
    project: Project, service: Service, source: Path, generated: set[str]
) -> None:
    """A generated file must exist as a file; anything else becomes a folder."""
    if str(source) in generated:
        if not source.is_file():
            kind = "a directory" if source.is_dir() else "missing"
            raise RuntimeFailure(
                f"{source} is {kind}, but {service.name} mounts it as a file — "
                f"remove it and run `iotstack render --dir {project.working_dir}`"
            )
        return
    if not source.exists():
        log.debug("creating bind-mount folder %s for %s", source, service.name)
        source.mkdir(parents=True)


def _own(source: Path, owner: Owner, service: Service, read_only: bool) -> list[str]:
    """Give the source (and what is inside a folder) to the service's user."""
    paths = [source, *source.rglob("*")] if source.is_dir() else [source]
    wrong = [path for path in paths if _owner_of(path) != owner]
    if not wrong:
        return []
    if os.geteuid() != 0:
        access = "read" if read_only else "write"
        return [
            f"{source} is not owned by {owner.uid}:{owner.gid}, the user "
            f"{service.name} runs as, so it may fail to {access} it — "
            f"run `sudo chown -R {owner.uid}:{owner.gid} {source}`"
        ]
    for path in wrong:
        os.chown(path, owner.uid, owner.gid, follow_symlinks=False)
    return []


def _owner_of(path: Path) -> Owner:
    stat = path.lstat()
    return Owner(stat.st_uid, stat.st_gid)


def _digest(path: Path) -> str:
    try:
        return checksum(path.read_bytes())
    except (FileNotFoundError, IsADirectoryError):
        return "missing"
