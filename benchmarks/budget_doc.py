"""Write docs/budget.md: the budget per variant and profile, and the measured figures.

The budget tables come from the code (`iotstack.budget`), the measured ones
from a `footprint.py` run, so the document never drifts from either.

    python benchmarks/budget_doc.py FOOTPRINT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from iotstack.budget import (
    ENGINE_BASE_MIB,
    ENGINE_PER_CONTAINER_MIB,
    JVM_NATIVE_MIB,
    iotdb_jvm_memory,
    iotdb_node_limits,
    stack_budget,
)
from iotstack.config import StackConfig
from iotstack.plan import build_plan
from iotstack.variants import VARIANTS

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ("t3.micro", "t3.small", "t3.medium")
ORDER = (
    "victoriametrics",
    "influxdb",
    "prometheus",
    "mosquitto",
    "nodered",
    "iotdb",
    "ainode",
    "grafana",
    "nginx",
)

INTRO = """# Memory budget

A small host has no swap: when the containers together grow past its RAM, the
kernel kills one of them. iotstack therefore gives every service a memory
limit (`mem_limit` = `memswap_limit` in `docker-compose.yml`) and adds them up
with what the Docker engine and the OS need. `iotstack budget` shows the sum
for your stack; `iotstack doctor` and `iotstack up` refuse a stack whose sum is
over the host's RAM (`up --force` starts it anyway) and name the ways out the
design allows: AINode on another host (`ainode.host`), optional services
switched off (`services: {{name: false}}`), or a bigger `host.profile`.

Limits come from `profiles/hosts.yaml` for the chosen `host.profile`;
`host.memory: {{service: MiB}}` in `iotstack.yaml` overrides any of them.

total = services' limits + Docker engine + OS reserve

- Docker engine: {engine_base} MiB for dockerd and containerd, plus
  {engine_shim} MiB per running container (its containerd shim and the
  docker-proxy of its published port).
- OS reserve: `reserve_mib` of the profile (kernel, systemd, sshd and some
  page cache for the stores' files).
"""

IOTDB = """## IoTDB: heap and direct memory below the limit

The standalone IoTDB container runs two JVMs, ConfigNode and DataNode. A JVM
sizes its heap from the host's RAM unless told otherwise, so iotstack renders
explicit `-Xms/-Xmx` and `-XX:MaxDirectMemorySize` for each, computed by
`iotstack.budget.iotdb_jvm_memory(limit)`:

1. each node first keeps its measured native memory outside heap and direct
   buffers (metaspace, code cache, thread stacks, GC tables):
   ConfigNode {cn_native} MiB, DataNode {dn_native} MiB;
2. the rest of the container's limit goes 30 % to the ConfigNode and 70 % to
   the DataNode;
3. inside each node's share, 60 % goes to the heap and 40 % to direct
   memory, at least 48 and 32 MiB. IoTDB's own split gives the heap 3/4, but
   at these sizes its Raft and RPC layers need the direct memory: a
   ConfigNode started with 17 MiB of direct memory never elected its Raft
   leader here, one with 24 MiB or more did.

| IoTDB limit | ConfigNode share: heap + direct | DataNode share: heap + direct |
|---|---|---|
"""

METHOD = """## How the figures were measured

`benchmarks/footprint.py` starts the real servers natively on 127.0.0.1 with
the memory settings iotstack renders for the profile (VictoriaMetrics with
`-memory.allowedBytes` at 60 % of its limit, as it sizes itself from the
cgroup limit in a container; Node-RED with the same `--max-old-space-size`;
IoTDB 1C1D from the Maven Central jars with the rendered heap and direct
memory), then:

- reads each process tree's resident memory (`VmRSS`) 3 s after start;
- runs a bounded load: {rounds} rounds (at most 120 s) of one probe per
  server — a Prometheus-format sample written to VictoriaMetrics and queried
  back, a query through Nginx, an InfluxDB line written and queried, a JSON
  message published on MQTT that Node-RED turns into line protocol for
  VictoriaMetrics, and an IoTDB `insertTablet` plus `SELECT last` — while
  Prometheus scrapes itself and VictoriaMetrics every 5 s and remote-writes
  to VictoriaMetrics;
- reads the resident memory again, and the peak (`VmHWM`).

The Docker engine's figure is the test engine's dockerd and containerd idle,
then with four idle containers running (the difference per container is the
shim). The docker-proxy that publishes each port was not measured; the
per-container figure in the budget leaves room for it. Run it again with
`python benchmarks/footprint.py --engine --json out.json --write-docs`.

Resident memory after a short load is a floor, not a ceiling: caches grow
with the number of series and with time (VictoriaMetrics reached about
100 MB after 20 minutes here). Limits therefore sit well above the measured
peak; a ratio near 1 would mean the service is at its limit already.

### Services that cannot run here

- **Grafana**: no Debian, PyPI or npm package, so it was not measured. Its
  documentation recommends at least 255 MB of memory (512 MB in the current
  install guide, for the whole machine, OS included). iotstack gives it
  192 MiB on a t3.micro and 256 MiB above, below that recommendation, which
  is a known risk on the small profiles; image rendering and heavy alerting
  need more (`host.memory.grafana`).
- **AINode**: no runnable package here (it is a Python service with PyTorch
  and the built-in forecasting models). Its deployment guide names no memory
  figure; the budget counts the Python runtime with PyTorch loaded plus one
  built-in model in memory: 768 MiB on a t3.micro (where it never fits next
  to everything else), 1024 MiB above. Large foundation models need more, or
  AINode on its own host (`ainode.host`).
"""


def budget_tables() -> str:
    """One table per variant: each service's limit and the total per profile."""
    lines = ["## Budget per variant and host profile (MiB)", ""]
    for variant in VARIANTS:
        budgets = [
            stack_budget(build_plan(StackConfig(variant=variant, host={"profile": p})))
            for p in PROFILES
        ]
        lines += [f"### {variant}", "", "| | " + " | ".join(PROFILES) + " |"]
        lines.append("|---" * (len(PROFILES) + 1) + "|")
        for name in ORDER:
            cells = [str(b.limits.get(name, "—")) for b in budgets]
            if any(cell != "—" for cell in cells):
                lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for label, key in (
            ("Docker engine", "engine_mib"),
            ("OS reserve", "os_reserve_mib"),
            ("**total**", "total_mib"),
            ("host RAM", "host_ram_mib"),
        ):
            cells = [str(getattr(b, key)) for b in budgets]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        verdicts = ["fits" if b.fits else "**does not fit**" for b in budgets]
        lines.append("| verdict | " + " | ".join(verdicts) + " |")
        lines += ["", _ways_out_lines(budgets), ""]
    return "\n".join(lines)


def _ways_out_lines(budgets) -> str:
    lines = []
    for budget in budgets:
        if budget.fits:
            continue
        offered = "; ".join(
            f"{way.change} → {way.total_mib} MiB"
            + ("" if way.fits else " (still too big)")
            for way in budget.ways_out
        )
        lines.append(f"- {budget.profile}: {offered}")
    return "\n".join(lines)


def iotdb_table() -> str:
    """Heap and direct memory of both IoTDB nodes for each profile's limit."""
    rows = []
    for limit in (640, 768, 1152):
        shares = iotdb_node_limits(limit)
        memory = iotdb_jvm_memory(limit)
        cells = [
            f"{shares[node]}: {memory[node][0]} + {memory[node][1]}"
            for node in ("confignode", "datanode")
        ]
        rows.append(f"| {limit} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def measured_table(result: dict) -> str:
    """The footprint run as a table."""
    lines = [
        f"## Measured on this machine ({result['profile']} limits)",
        "",
        "| service | limit | after start | after load | peak | peak / limit |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["measured"]:
        lines.append(
            f"| {row['service']} | {row['budget_mib']} | "
            f"{row['after_start_mib']:.0f} | {row['after_load_mib']:.0f} | "
            f"{row['peak_mib']:.0f} | {row['ratio']:.2f} |"
        )
    notes = [f"- {r['service']}: {r['note']}" for r in result["measured"] if r["note"]]
    if notes:
        lines += ["", *notes]
    engine = result.get("engine")
    if engine:
        lines += [
            "",
            f"Docker engine (dockerd + containerd): {engine['base_mib']:.0f} MiB idle, "
            f"{engine['per_container_mib']:.1f} MiB more per running container.",
        ]
    lines += ["", "Figures in MiB of resident memory (RSS) of each process tree."]
    return "\n".join(lines)


def write_budget_doc(result: dict) -> Path:
    """Write docs/budget.md from the code and one footprint result."""
    text = "\n".join(
        [
            INTRO.format(
                engine_base=ENGINE_BASE_MIB, engine_shim=ENGINE_PER_CONTAINER_MIB
            ),
            budget_tables(),
            IOTDB.format(
                cn_native=JVM_NATIVE_MIB["confignode"],
                dn_native=JVM_NATIVE_MIB["datanode"],
            )
            + iotdb_table()
            + "\n",
            measured_table(result),
            "",
            METHOD.format(rounds=result["rounds"]),
        ]
    )
    path = ROOT / "docs" / "budget.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


if __name__ == "__main__":
    print(write_budget_doc(json.loads(Path(sys.argv[1]).read_text())))
