"""The memory budget: limits, engine and OS against the host's RAM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from iotstack.budget import (
    JVM_NATIVE_MIB,
    apply_way_out,
    check_fits,
    engine_overhead_mib,
    iotdb_jvm_memory,
    iotdb_node_limits,
    jvm_memory,
    stack_budget,
)
from iotstack.config import StackConfig
from iotstack.data import load_profile
from iotstack.errors import StackTooBig
from iotstack.plan import build_plan
from iotstack.variants import VARIANTS

PROFILES = ("t3.micro", "t3.small", "t3.medium")


def plan_for(**settings):
    return build_plan(StackConfig.model_validate(settings))


def test_everything_with_ainode_does_not_fit_a_t3_micro():
    budget = stack_budget(plan_for(variant="minimal", host={"profile": "t3.micro"}))

    assert budget.host_ram_mib == 1024
    assert "ainode" in budget.limits
    assert budget.total_mib > 1024
    assert not budget.fits
    assert budget.headroom_mib == 1024 - budget.total_mib


def test_the_verdict_offers_the_ways_out_the_design_allows():
    budget = stack_budget(plan_for(variant="minimal", host={"profile": "t3.micro"}))
    changes = {way.change: way for way in budget.ways_out}

    assert "set `ainode.host: <other host>`" in changes
    switched_off = [way for way in budget.ways_out if "services:" in way.change]
    assert switched_off and switched_off[0].fits
    assert "ainode: false" in switched_off[0].change
    bigger = [way for way in budget.ways_out if "host.profile" in way.change]
    assert bigger and bigger[0].fits
    assert all(way.total_mib > 0 for way in budget.ways_out)


def test_each_way_out_really_fits_when_applied():
    plan = plan_for(variant="minimal", host={"profile": "t3.micro"})
    ways = stack_budget(plan).ways_out

    for way in ways:
        applied = build_plan(apply_way_out(plan.config, way))
        assert stack_budget(applied).fits == way.fits, way.change
        assert stack_budget(applied).total_mib == way.total_mib, way.change


def test_check_fits_refuses_with_a_named_error_naming_the_ways_out():
    plan = plan_for(variant="minimal", host={"profile": "t3.micro"})

    with pytest.raises(StackTooBig) as caught:
        check_fits(plan)

    message = str(caught.value)
    assert "does NOT fit" in message
    assert "services:" in message
    assert "--force" in message
    assert caught.value.exit_code == 2


def test_check_fits_passes_a_stack_that_fits():
    plan = plan_for(
        variant="minimal",
        host={"profile": "t3.micro"},
        services={"iotdb": False, "ainode": False},
    )

    check_fits(plan)

    assert stack_budget(plan).fits


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_t3_small_fits_every_variant_once_ainode_runs_elsewhere(variant):
    plan = plan_for(
        variant=variant, host={"profile": "t3.small"}, ainode={"host": "gpu-box"}
    )

    assert stack_budget(plan).fits


@pytest.mark.parametrize("variant", VARIANTS)
def test_a_t3_medium_fits_every_variant_with_ainode(variant):
    assert stack_budget(plan_for(variant=variant, host={"profile": "t3.medium"})).fits


def test_total_adds_limits_engine_and_os_reserve():
    plan = plan_for(variant="minimal", host={"profile": "t3.small"})
    budget = stack_budget(plan)
    profile = load_profile("hosts")["t3.small"]

    assert budget.limits == {n: s.memory_mib for n, s in plan.services.items()}
    assert budget.engine_mib == engine_overhead_mib(len(plan.services))
    assert budget.os_reserve_mib == profile["reserve_mib"]
    assert budget.total_mib == (
        sum(budget.limits.values()) + budget.engine_mib + budget.os_reserve_mib
    )


def test_user_memory_overrides_count_in_the_budget():
    base = stack_budget(plan_for(host={"profile": "t3.small"}))
    bigger = stack_budget(
        plan_for(host={"profile": "t3.small", "memory": {"nodered": 512}})
    )

    assert bigger.limits["nodered"] == 512
    assert bigger.total_mib - base.total_mib == 512 - base.limits["nodered"]


def test_a_custom_host_uses_its_own_ram():
    budget = stack_budget(
        plan_for(host={"profile": "custom", "ram_mib": 8192, "cpus": 4})
    )

    assert budget.profile == "custom"
    assert budget.host_ram_mib == 8192
    assert budget.fits


@pytest.mark.parametrize("limit", [640, 768, 1152, 2048])
def test_iotdb_heap_and_direct_memory_stay_below_the_container_limit(limit):
    shares = iotdb_node_limits(limit)
    memory = iotdb_jvm_memory(limit)

    assert sum(shares.values()) == limit
    for node, (heap, direct) in memory.items():
        assert heap > direct >= 32
        assert heap + direct + JVM_NATIVE_MIB[node] <= shares[node]


def test_every_profile_gives_iotdb_room_for_both_jvms():
    for profile in PROFILES:
        limit = load_profile("hosts")[profile]["limits"]["iotdb"]
        shares = iotdb_node_limits(limit)
        for node, (heap, direct) in iotdb_jvm_memory(limit).items():
            assert heap + direct + JVM_NATIVE_MIB[node] <= shares[node], profile


def test_jvm_memory_keeps_a_usable_floor_for_tiny_limits():
    heap, direct = jvm_memory(64, "confignode")

    assert heap >= 48
    assert direct >= 32


def test_budget_command_prints_json_with_the_verdict(tmp_path: Path):
    (tmp_path / "iotstack.yaml").write_text(
        "variant: minimal\nhost:\n  profile: t3.micro\n"
    )

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "iotstack.cli",
            "budget",
            "--dir",
            str(tmp_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["fits"] is False
    assert data["host_ram_mib"] == 1024
    assert data["total_mib"] == (
        data["services_mib"] + data["engine_mib"] + data["os_reserve_mib"]
    )
    assert any(way["fits"] for way in data["ways_out"])
