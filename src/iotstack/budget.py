"""The memory budget: does a stack fit its host, and what to change if it does not.

The total is every service's memory limit, plus the Docker engine's own
overhead (dockerd, containerd and one shim per container), plus what the OS
keeps (`reserve_mib` of the host profile). The host has no swap, so the total
must stay within its RAM: a limit is a promise the kernel is asked to keep.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

from iotstack.config import StackConfig
from iotstack.data import load_profile
from iotstack.errors import ConfigError, StackTooBig
from iotstack.plan import StackPlan, build_plan

# Measured with benchmarks/footprint.py (see docs/budget.md): dockerd plus
# containerd idle (114 MiB), and per running container its shim (1.4 MiB
# measured) plus a docker-proxy for its published port, which was not.
ENGINE_BASE_MIB = 120
ENGINE_PER_CONTAINER_MIB = 8

# The JVM's own memory outside heap and direct buffers (metaspace, code cache,
# thread stacks, GC tables), measured per IoTDB node as resident memory minus
# the heap under the footprint load; see docs/budget.md.
JVM_NATIVE_MIB = {"confignode": 140, "datanode": 210}
# What is left after both nodes' native memory goes 30/70 to ConfigNode and
# DataNode (the ConfigNode only keeps cluster metadata), and inside each node
# 60/40 to heap and direct memory. IoTDB's own split gives the heap 3/4, but
# at these sizes its Raft and RPC layers need at least 32 MiB of direct
# memory: a ConfigNode with 17 MiB never elected its leader here.
CONFIGNODE_SHARE = 0.3
JVM_HEAP_SHARE = 0.6
MIN_HEAP_MIB = 48
MIN_DIRECT_MIB = 32


@dataclass(frozen=True)
class WayOut:
    """One change to iotstack.yaml that the design allows, and its new total."""

    change: str
    settings: dict[str, object]
    total_mib: int
    fits: bool


@dataclass(frozen=True)
class Budget:
    """A stack's memory budget on its host."""

    variant: str
    profile: str
    host_ram_mib: int
    limits: dict[str, int]
    engine_mib: int
    os_reserve_mib: int
    ways_out: list[WayOut] = field(default_factory=list)

    @property
    def services_mib(self) -> int:
        """The sum of the services' memory limits."""
        return sum(self.limits.values())

    @property
    def total_mib(self) -> int:
        """Services, engine and OS together."""
        return self.services_mib + self.engine_mib + self.os_reserve_mib

    @property
    def headroom_mib(self) -> int:
        """What is left of the host's RAM (negative when it does not fit)."""
        return self.host_ram_mib - self.total_mib

    @property
    def fits(self) -> bool:
        """Whether every limit can be honoured at once without swap."""
        return self.headroom_mib >= 0

    def summary(self) -> str:
        """One line: total against RAM."""
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"{self.variant} on {self.profile}: {self.total_mib} MiB of "
            f"{self.host_ram_mib} MiB — {verdict} ({self.headroom_mib:+d} MiB)"
        )

    def as_dict(self) -> dict[str, object]:
        """The budget for `--json`."""
        return {
            "variant": self.variant,
            "profile": self.profile,
            "host_ram_mib": self.host_ram_mib,
            "limits_mib": dict(self.limits),
            "services_mib": self.services_mib,
            "engine_mib": self.engine_mib,
            "os_reserve_mib": self.os_reserve_mib,
            "total_mib": self.total_mib,
            "headroom_mib": self.headroom_mib,
            "fits": self.fits,
            "ways_out": [way.__dict__ for way in self.ways_out],
        }


def engine_overhead_mib(containers: int) -> int:
    """What the Docker engine itself uses while running `containers`."""
    return ENGINE_BASE_MIB + ENGINE_PER_CONTAINER_MIB * containers


def stack_budget(plan: StackPlan) -> Budget:
    """The budget of a plan, with the ways out when it does not fit."""
    budget = _bare_budget(plan)
    if budget.fits:
        return budget
    return Budget(**{**budget.__dict__, "ways_out": ways_out(plan)})


def fits(plan: StackPlan) -> bool:
    """Whether the plan's stack fits its host."""
    return _bare_budget(plan).fits


def check_fits(plan: StackPlan) -> None:
    """Raise StackTooBig, naming the ways out, when the stack does not fit."""
    budget = stack_budget(plan)
    if budget.fits:
        return

    options = [way.change for way in budget.ways_out if way.fits]
    fix = "; or ".join(options) if options else "use a host with more RAM"
    raise StackTooBig(
        f"{budget.summary()}; the kernel would kill services when they grow",
        fix=f"{fix} (or pass --force to start anyway)",
    )


def ways_out(plan: StackPlan) -> list[WayOut]:
    """Changes the design allows that shrink the stack or grow the host."""
    found: list[WayOut] = []
    config = plan.config

    if plan.has("ainode"):
        # A placeholder that passes validation, so the trial config can be built.
        settings = {"ainode": {"host": "other-host"}}
        moved = _try(config, settings)
        if moved is not None:
            change = "set `ainode.host: <other host>`"
            found.append(WayOut(change, settings, moved.total_mib, moved.fits))

    smaller = _fewest_services_off(plan)
    if smaller is not None:
        names, budget = smaller
        settings = {"services": dict.fromkeys(names, False)}
        listed = ", ".join(f"{name}: false" for name in names)
        change = f"set `services: {{{listed}}}`"
        found.append(WayOut(change, settings, budget.total_mib, True))

    bigger = _smallest_bigger_profile(plan)
    if bigger is not None:
        profile, budget = bigger
        settings = {"host": {"profile": profile}}
        change = f"set `host.profile: {profile}`"
        found.append(WayOut(change, settings, budget.total_mib, True))
    return found


def apply_way_out(config: StackConfig, way: WayOut) -> StackConfig:
    """The config with a way out's settings merged in."""
    return StackConfig.model_validate(_merged(config, way.settings))


def jvm_memory(limit_mib: int, node: str = "datanode") -> tuple[int, int]:
    """Heap and direct memory (MiB) for one IoTDB node given its share of the limit.

    The JVM's own native memory comes off first; the rest is split between
    heap and direct memory, so heap + direct + native stays below the share.
    """
    usable = max(limit_mib - JVM_NATIVE_MIB[node], MIN_HEAP_MIB + MIN_DIRECT_MIB)
    heap = max(int(usable * JVM_HEAP_SHARE), MIN_HEAP_MIB)
    direct = max(usable - heap, MIN_DIRECT_MIB)
    return heap, direct


def iotdb_node_limits(limit_mib: int) -> dict[str, int]:
    """Split the IoTDB standalone container's limit between its two JVMs."""
    rest = max(limit_mib - sum(JVM_NATIVE_MIB.values()), 0)
    confignode = JVM_NATIVE_MIB["confignode"] + int(rest * CONFIGNODE_SHARE)
    return {"confignode": confignode, "datanode": limit_mib - confignode}


def iotdb_jvm_memory(limit_mib: int) -> dict[str, tuple[int, int]]:
    """(heap, direct) in MiB for ConfigNode and DataNode inside one container limit."""
    return {
        node: jvm_memory(share, node)
        for node, share in iotdb_node_limits(limit_mib).items()
    }


def _bare_budget(plan: StackPlan) -> Budget:
    limits = {name: service.memory_mib for name, service in plan.services.items()}
    return Budget(
        variant=plan.config.variant,
        profile=plan.host.profile,
        host_ram_mib=plan.host.ram_mib,
        limits=limits,
        engine_mib=engine_overhead_mib(len(limits)),
        os_reserve_mib=plan.host.reserve_mib,
    )


def _merged(config: StackConfig, update: dict[str, object]) -> dict[str, object]:
    """The config as data with each section of `update` merged into it."""
    data = config.model_dump()
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def _try(config: StackConfig, update: dict[str, object]) -> Budget | None:
    """The budget after merging `update` into the config, or None if invalid."""
    try:
        merged = StackConfig.model_validate(_merged(config, update))
        return _bare_budget(build_plan(merged))
    except ConfigError:
        return None


def _fewest_services_off(plan: StackPlan) -> tuple[list[str], Budget] | None:
    """The smallest set of optional services to switch off so the stack fits."""
    required = set(plan.variant.required) | {plan.metrics_store}
    optional = [name for name in plan.services if name not in required]
    for count in range(1, len(optional) + 1):
        candidates = []
        for names in combinations(optional, count):
            services = {**plan.config.services, **dict.fromkeys(names, False)}
            budget = _try(plan.config, {"services": services})
            if budget is not None and budget.fits:
                candidates.append((list(names), budget))
        if candidates:
            return max(candidates, key=lambda found: found[1].services_mib)
    return None


def _smallest_bigger_profile(plan: StackPlan) -> tuple[str, Budget] | None:
    """The smallest named host profile with more RAM on which the stack fits."""
    hosts = load_profile("hosts")
    bigger = sorted(
        (entry["ram_mib"], name)
        for name, entry in hosts.items()
        if entry["ram_mib"] > plan.host.ram_mib
    )
    for _, name in bigger:
        budget = _try(plan.config, {"host": {"profile": name}})
        if budget is not None and budget.fits:
            return name, budget
    return None
