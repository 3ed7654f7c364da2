"""The documentation states the images and limits iotstack really renders."""

from __future__ import annotations

from pathlib import Path

import pytest

from iotstack.data import load_profile

ARCHITECTURE = Path(__file__).parents[1] / "docs" / "architecture.md"


@pytest.mark.parametrize("service", sorted(load_profile("services")))
def test_architecture_names_the_pinned_image(service: str):
    image = load_profile("services")[service]["image"]

    assert f"`{image}`" in ARCHITECTURE.read_text(encoding="utf-8")


@pytest.mark.parametrize("service", sorted(load_profile("hosts")["t3.micro"]["limits"]))
def test_architecture_states_the_t3_micro_limit(service: str):
    limit = load_profile("hosts")["t3.micro"]["limits"][service]
    row = next(
        line
        for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines()
        if line.startswith(f"| {service} |")
    )

    assert f"| {limit} MiB" in row
