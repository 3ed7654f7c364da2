"""Small local images that stand in for the upstream service images.

No container registry is reachable, so the tests build their own images: a
Debian bookworm base made with `debootstrap --variant=minbase` (the tarball is
cached), imported into the engine, and one image per service from the
Dockerfiles in tests/images/<service>/. Each image follows its upstream
image's contract (entrypoint, command, paths, user), so a rendered compose file
runs against either. An image is rebuilt only when its inputs change: the
hash of its build context and of its parent image is stored as a label.

Run `python -m harness.images` from tests/ to build them ahead of the tests.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness.engine import start_engine, test_cache

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = REPO / "tests" / "images"
PREFIX = "iotstack-local"
TAG = "test"
DEBIAN_IMAGE = f"{PREFIX}/debian:bookworm"
BASE_IMAGE = f"{PREFIX}/base:{TAG}"
HASH_LABEL = "org.iotstack.test.inputs"
MIRROR = "http://deb.debian.org/debian"
# Packages every service image needs for health checks and HTTPS.
BASE_PACKAGES = "wget,curl,ca-certificates"

SERVICES = (
    "victoria-metrics",
    "influxdb",
    "prometheus",
    "mosquitto",
    "nginx",
    "node-red",
)


# iotstack's service names → the local image each one runs on here; the
# services without a local image must be switched off in such a stack.
STACK_SERVICE_IMAGES = {
    "victoriametrics": "victoria-metrics",
    "prometheus": "prometheus",
    "mosquitto": "mosquitto",
    "nodered": "node-red",
    "nginx": "nginx",
}
NO_LOCAL_IMAGE = {"grafana": False, "iotdb": False, "ainode": False}


class ImageBuildError(RuntimeError):
    """A local image could not be built; the message ends with the build log."""


@dataclass(frozen=True)
class BuildReport:
    """What `ensure_images` did for one image."""

    image: str
    built: bool
    seconds: float


def image_ref(service: str) -> str:
    """Local image name for a service, e.g. iotstack-local/nginx:test."""
    return f"{PREFIX}/{service}:{TAG}"


def local_image_map() -> dict[str, str]:
    """Service name → local image reference, for every local image."""
    return {service: image_ref(service) for service in SERVICES}


def ensure_images(client: docker.DockerClient) -> list[BuildReport]:
    """Make sure the base and every service image exist and are current."""
    reports = [_ensure_debian(client)]

    base_context = DOCKERFILES / "base"
    reports.append(_ensure_built(client, BASE_IMAGE, base_context, DEBIAN_IMAGE))

    # Service builds are mostly downloads and unpacking: two at a time keeps
    # both cores busy without thrashing.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(_ensure_service, client, name) for name in SERVICES]
        reports.extend(future.result() for future in futures)

    return reports


def _ensure_service(client: docker.DockerClient, service: str) -> BuildReport:
    """Build one service image from its Dockerfile folder."""
    if service == "node-red":
        with _NodeRedStaging() as (context, version):
            return _ensure_built(
                client,
                image_ref(service),
                context,
                BASE_IMAGE,
                buildargs={"NODE_RED_VERSION": version},
            )
    return _ensure_built(client, image_ref(service), DOCKERFILES / service, BASE_IMAGE)


def _ensure_debian(client: docker.DockerClient) -> BuildReport:
    """Import the cached debootstrap tarball as the Debian base image."""
    started = time.monotonic()
    tarball = ensure_rootfs_tarball()
    if _has_image(client, DEBIAN_IMAGE):
        return BuildReport(DEBIAN_IMAGE, built=False, seconds=0.0)

    repository, tag = DEBIAN_IMAGE.rsplit(":", 1)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    return BuildReport(DEBIAN_IMAGE, built=True, seconds=time.monotonic() - started)


def ensure_rootfs_tarball() -> Path:
    """debootstrap a minimal bookworm once and keep it as a tarball in the cache."""
    tarball = test_cache() / "debian-bookworm-minbase.tar"
    if tarball.exists():
        return tarball

    tarball.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="debootstrap-", dir=tarball.parent) as tmp:
        rootfs = Path(tmp) / "rootfs"
        _run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={BASE_PACKAGES}",
                "bookworm",
                str(rootfs),
                MIRROR,
            ]
        )
        _trim_rootfs(rootfs)

        partial = tarball.with_suffix(".tar.partial")
        _run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.replace(tarball)
    return tarball


def _trim_rootfs(rootfs: Path) -> None:
    """Drop package caches, lists and docs that an image does not need."""
    for relative in (
        "var/cache/apt/archives",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
    ):
        target = rootfs / relative
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(exist_ok=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(exist_ok=True)


def _ensure_built(
    client: docker.DockerClient,
    image: str,
    context: Path,
    parent: str,
    buildargs: dict[str, str] | None = None,
) -> BuildReport:
    """Build `image` from `context` unless one with the same inputs exists."""
    inputs = _inputs_hash(context, client.images.get(parent).id, buildargs or {})
    if _image_label(client, image) == inputs:
        return BuildReport(image, built=False, seconds=0.0)

    started = time.monotonic()
    log.info("building %s", image)
    output = client.api.build(
        path=str(context),
        tag=image,
        rm=True,
        forcerm=True,
        decode=True,
        # Host network for RUN steps: apt reaches the mirror even if the
        # engine could not set up NAT for its own networks.
        network_mode="host",
        labels={HASH_LABEL: inputs},
        buildargs=buildargs or {},
    )
    lines = list(_build_log(output, image))
    if not _image_label(client, image) == inputs:
        raise ImageBuildError(f"{image} was not tagged:\n" + "".join(lines[-30:]))
    return BuildReport(image, built=True, seconds=time.monotonic() - started)


def _build_log(output: Iterator[dict], image: str) -> Iterator[str]:
    """Yield the build's log lines; raise on the first build error."""
    lines: list[str] = []
    for chunk in output:
        if "error" in chunk:
            tail = "".join(lines[-30:])
            raise ImageBuildError(f"building {image} failed: {chunk['error']}\n{tail}")
        text = chunk.get("stream", "")
        if text:
            lines.append(text)
            yield text


def _inputs_hash(context: Path, parent_id: str, buildargs: dict[str, str]) -> str:
    """Hash of every file in the build context, the parent image and build args."""
    digest = hashlib.sha256(parent_id.encode())
    for key in sorted(buildargs):
        digest.update(f"{key}={buildargs[key]}".encode())
    for path in sorted(context.rglob("*")):
        if not path.is_file() or "node_modules" in path.parts:
            continue
        digest.update(str(path.relative_to(context)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _NodeRedStaging:
    """Build context for node-red: its Dockerfile folder plus host node and app."""

    def __enter__(self) -> tuple[Path, str]:
        app = _node_red_install()
        version = _node_red_version(app)
        node = Path(shutil.which("node") or "/usr/bin/node").resolve()

        self.context = test_cache() / "build" / "node-red"
        shutil.rmtree(self.context, ignore_errors=True)
        shutil.copytree(DOCKERFILES / "node-red", self.context)
        shutil.copy2(node, self.context / "node")
        (self.context / "app").mkdir()
        shutil.copy2(app / "package.json", self.context / "app" / "package.json")
        shutil.copytree(app / "node_modules", self.context / "app" / "node_modules")

        # node_modules is left out of the content hash (thousands of files);
        # the node-red and node versions stand for it.
        node_version = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, check=True
        ).stdout.strip()
        (self.context / "versions.txt").write_text(f"{version} node {node_version}\n")
        return self.context, version

    def __exit__(self, *exc_info: object) -> None:
        shutil.rmtree(self.context, ignore_errors=True)


def _node_red_install() -> Path:
    """The npm node-red tree in the test cache (installed by scripts/deps)."""
    app = test_cache() / "node-red"
    if not (app / "node_modules" / "node-red" / "package.json").exists():
        _run(["bash", str(REPO / "scripts" / "deps" / "node-red.sh")])
    return app


def _node_red_version(app: Path) -> str:
    package = app / "node_modules" / "node-red" / "package.json"
    return str(json.loads(package.read_text())["version"])


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        return False
    return True


def _image_label(client: docker.DockerClient, image: str) -> str | None:
    try:
        labels = client.images.get(image).labels or {}
    except docker.errors.ImageNotFound:
        return None
    return labels.get(HASH_LABEL)


def _run(command: list[str]) -> None:
    """Run a build step; on failure raise with the end of its output."""
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise ImageBuildError(
            f"{' '.join(command)} failed ({result.returncode}):\n{tail}"
        )


def main() -> int:
    """Start a private engine on the cached data root and build every image."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    base_url = os.environ.get("IOTSTACK_DOCKER_HOST")
    started = time.monotonic()

    engine = None
    if base_url:
        client = docker.DockerClient(base_url=base_url)
    else:
        engine = start_engine()
        client = engine.client
        for note in engine.notes:
            print(note, file=sys.stderr)

    try:
        for report in ensure_images(client):
            state = f"built in {report.seconds:.0f} s" if report.built else "up to date"
            print(f"{report.image}: {state}")
    finally:
        if engine is not None:
            engine.stop()

    print(f"local images ready in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
