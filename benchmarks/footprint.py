"""Measure the real servers' memory against iotstack's budget.

Starts the native servers of the minimal variant on 127.0.0.1 (VictoriaMetrics,
Prometheus, Mosquitto, Node-RED, Nginx, IoTDB 1C1D; InfluxDB for the other
backend) with the memory settings iotstack renders for the chosen host
profile, measures each one's resident memory after start and under a small
bounded load, and prints measured against budget. Optionally it starts the
test Docker engine to measure dockerd, containerd and the per-container shim.

    python benchmarks/footprint.py [--profile t3.micro] [--rounds 300]
        [--engine] [--json FILE] [--write-docs]

Run on demand; it is never a timed test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import iotdb, native  # noqa: E402
from iotstack.budget import (  # noqa: E402
    ENGINE_BASE_MIB,
    ENGINE_PER_CONTAINER_MIB,
    iotdb_jvm_memory,
    iotdb_node_limits,
)
from iotstack.config import StackConfig  # noqa: E402
from iotstack.plan import build_plan  # noqa: E402

LOAD_DEADLINE_S = 120.0
MIB = 1024 * 1024


@dataclass
class Measured:
    """One service's memory: after start, after the load, and its peak (MiB)."""

    service: str
    budget_mib: int
    after_start_mib: float
    after_load_mib: float
    peak_mib: float
    note: str = ""

    @property
    def ratio(self) -> float:
        """Peak resident memory as a share of the budget."""
        return self.peak_mib / self.budget_mib


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def memory_mib(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process tree in MiB."""
    current = peak = 0.0
    for member in process_tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        current += int(values.get("VmRSS", "0 kB").split()[0]) / 1024
        peak += int(values.get("VmHWM", "0 kB").split()[0]) / 1024
    return current, peak


# --- servers -------------------------------------------------------------------


@dataclass
class Running:
    """The servers under measurement and where they listen."""

    pids: dict[str, list[int]]
    vm_url: str
    influx_url: str
    nginx_url: str
    mqtt_port: int
    iotdb_cluster: iotdb.IoTDBCluster | None


def start_all(stack: ExitStack, work: Path, limits: dict[str, int]) -> Running:
    """Start every server natively with the memory settings iotstack renders."""
    pids: dict[str, list[int]] = {}

    def keep(name: str, server: native.ServerProcess) -> native.ServerProcess:
        stack.callback(server.stop)
        pids[name] = [server.process.pid]
        return server

    vm = keep("victoriametrics", start_victoriametrics(work, limits))
    influx = keep("influxdb", start_influxdb(work))
    keep("prometheus", start_prometheus(work, vm.url))
    broker = keep("mosquitto", start_mosquitto(work))
    keep("nodered", start_nodered(work, broker.port, vm.url, limits["nodered"]))
    nginx = keep("nginx", start_nginx(work, vm.url))

    cluster = None
    if iotdb.iotdb_jars_present():
        cluster = iotdb_cluster(work, limits["iotdb"])
        stack.callback(cluster.stop)
        try:
            cluster.start(timeout=240)
        except iotdb.IoTDBStartError as exc:
            print(f"IoTDB did not start, measured without it: {exc}"[:2000])
            cluster = None
        else:
            pids["iotdb"] = [p.pid for p in cluster._processes.values()]
    return Running(pids, vm.url, influx.url, nginx.url, broker.port, cluster)


def start_victoriametrics(work: Path, limits: dict[str, int]) -> native.ServerProcess:
    # In a container VictoriaMetrics sizes its caches from the cgroup limit
    # (60 % by default); natively it would see the whole host, so say it.
    allowed = int(limits["victoriametrics"] * 0.6) * MIB
    return native.start_victoriametrics(
        native.free_port(),
        work / "vm-data",
        [f"-memory.allowedBytes={allowed}"],
        run_dir=work / "vm",
    )


def start_influxdb(work: Path) -> native.ServerProcess:
    config = native.write_influxdb_config(
        work / "influxdb.conf",
        work / "influx-data",
        http_port=native.free_port(),
        rpc_port=native.free_port(),
        auth_enabled=False,
    )
    server = native.start_influxdb(config, run_dir=work / "influx")
    httpx.post(f"{server.url}/query", data={"q": "CREATE DATABASE iot"}, timeout=10)
    return server


def start_prometheus(work: Path, vm_url: str) -> native.ServerProcess:
    port = native.free_port()
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 5s\n"
        "scrape_configs:\n"
        "  - job_name: prometheus\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        "  - job_name: vm\n"
        f"    static_configs: [{{targets: ['{vm_url[7:]}']}}]\n"
        f"remote_write:\n  - url: {vm_url}/api/v1/write\n"
    )
    return native.start_prometheus(
        config, port, work / "prom-data", run_dir=work / "prom"
    )


def start_mosquitto(work: Path) -> native.ServerProcess:
    config = work / "mosquitto.conf"
    config.write_text(f"listener {native.free_port()}\nallow_anonymous true\n")
    return native.start_mosquitto(config, run_dir=work / "mosquitto")


def start_nodered(
    work: Path, mqtt_port: int, vm_url: str, limit_mib: int
) -> native.ServerProcess:
    """Node-RED with a telemetry flow: MQTT in, line protocol out to the store."""
    flows = [
        {"id": "tab", "type": "tab", "label": "telemetry"},
        {
            "id": "broker",
            "type": "mqtt-broker",
            "broker": "127.0.0.1",
            "port": str(mqtt_port),
            "clientid": "",
            "protocolVersion": "4",
        },
        {
            "id": "in",
            "type": "mqtt in",
            "z": "tab",
            "topic": "iot/raw/#",
            "qos": "0",
            "datatype": "json",
            "broker": "broker",
            "wires": [["convert"]],
        },
        {
            "id": "convert",
            "type": "function",
            "z": "tab",
            "func": (
                "const p = msg.topic.split('/');\n"
                "msg.payload = `${p[4]},site=${p[2]},device=${p[3]} "
                "value=${msg.payload.value}`;\n"
                "msg.headers = {'content-type': 'text/plain'};\nreturn msg;"
            ),
            "outputs": 1,
            "wires": [["write"]],
        },
        {
            "id": "write",
            "type": "http request",
            "z": "tab",
            "method": "POST",
            "url": f"{vm_url}/write",
            "ret": "txt",
            "wires": [[]],
        },
    ]
    user_dir = work / "nodered"
    user_dir.mkdir(parents=True, exist_ok=True)
    flows_file = user_dir / "flows.json"
    flows_file.write_text(json.dumps(flows))
    # The rendered compose file sets the same V8 heap ceiling.
    os.environ["NODE_OPTIONS"] = f"--max-old-space-size={int(limit_mib * 0.6)}"
    try:
        return native.start_node_red(
            user_dir, native.free_port(), flows_file, run_dir=work / "nr"
        )
    finally:
        os.environ.pop("NODE_OPTIONS")


def start_nginx(work: Path, vm_url: str) -> native.ServerProcess:
    port = native.free_port()
    config = work / "nginx.conf"
    config.write_text(
        "events {}\nhttp {\n"
        f"  server {{\n    listen {port};\n"
        f"    location /vm/ {{ proxy_pass {vm_url}/; }}\n  }}\n}}\n"
    )
    return native.start_nginx(config, port, run_dir=work / "nginx")


def iotdb_cluster(work: Path, limit_mib: int) -> iotdb.IoTDBCluster:
    """IoTDB 1C1D with the heap and direct memory iotstack renders for `limit_mib`."""
    memory = iotdb_jvm_memory(limit_mib)
    conf = work / "iotdb-conf"
    iotdb.write_minimal_properties(conf, iotdb.allocate_ports())
    return iotdb.IoTDBCluster(
        conf_dir=conf,
        work_dir=work / "iotdb",
        confignode_memory=iotdb.JvmMemory(*memory["confignode"]),
        datanode_memory=iotdb.JvmMemory(*memory["datanode"]),
    )


# --- load ----------------------------------------------------------------------


def run_load(running: Running, rounds: int) -> None:
    """Write and read a probe through every server, `rounds` times, bounded in time."""
    deadline = time.monotonic() + LOAD_DEADLINE_S
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", running.mqtt_port)
    client.loop_start()
    if running.iotdb_cluster is not None:
        running.iotdb_cluster.non_query("CREATE DATABASE root.bench")

    with httpx.Client(timeout=10) as http:
        for index in range(rounds):
            if time.monotonic() > deadline:
                break
            one_round(http, client, running, index)

    client.loop_stop()
    client.disconnect()


def one_round(
    http: httpx.Client, client: mqtt.Client, running: Running, index: int
) -> None:
    """One probe through each server: write, then read back."""
    now_ms = int(time.time() * 1000)
    device = f"d{index % 20}"
    sample = f'probe{{device="{device}"}} {index} {now_ms}'
    http.post(f"{running.vm_url}/api/v1/import/prometheus", content=sample)
    http.get(f"{running.vm_url}/api/v1/query", params={"query": "probe"})
    http.get(f"{running.nginx_url}/vm/api/v1/query", params={"query": "up"})
    http.post(
        f"{running.influx_url}/write",
        params={"db": "iot"},
        content=f"probe,device={device} value={index}",
    )
    http.get(
        f"{running.influx_url}/query",
        params={"db": "iot", "q": "SELECT last(value) FROM probe"},
    )
    payload = json.dumps({"value": index, "id": uuid.uuid4().hex})
    client.publish(f"iot/raw/bench/{device}/temperature", payload)
    if running.iotdb_cluster is not None:
        running.iotdb_cluster.insert_tablet(
            {
                "device": f"root.bench.{device}",
                "is_aligned": False,
                "measurements": ["value"],
                "data_types": ["DOUBLE"],
                "timestamps": [now_ms],
                "values": [[float(index)]],
            }
        )
        running.iotdb_cluster.sql(f"SELECT last value FROM root.bench.{device}")


# --- the Docker engine ---------------------------------------------------------


def measure_engine(containers: int = 4) -> dict[str, float]:
    """dockerd + containerd idle, and the shim's share per running container."""
    from harness.engine import start_engine

    engine = start_engine()
    try:
        base = _engine_rss(engine.run_dir)
        image = _any_local_image(engine.client)
        if image is None:
            return {"base_mib": base, "per_container_mib": float("nan")}
        started = [
            engine.client.containers.run(
                image, ["sleep", "300"], detach=True, mem_limit="16m"
            )
            for _ in range(containers)
        ]
        time.sleep(2)
        loaded = _engine_rss(engine.run_dir)
        for container in started:
            container.remove(force=True)
        return {"base_mib": base, "per_container_mib": (loaded - base) / containers}
    finally:
        engine.stop()


def _engine_rss(run_dir: Path) -> float:
    """dockerd, its containerd and the shims: every process naming our run folder.

    The shims detach from containerd, so a process tree would miss them.
    """
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(run_dir) in cmdline:
            total += _own_rss(int(entry.name))
    return total


def _own_rss(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _any_local_image(client) -> str | None:
    for image in client.images.list():
        if image.tags:
            return image.tags[0]
    return None


# --- report --------------------------------------------------------------------


def measure(
    running: Running, limits: dict[str, int], load: Callable[[], None]
) -> list[Measured]:
    """Resident memory of each server after start and after the load."""
    time.sleep(3)
    after_start = {name: _sum(pids)[0] for name, pids in running.pids.items()}
    load()
    time.sleep(3)

    results = []
    for name, pids in running.pids.items():
        current, peak = _sum(pids)
        note = ""
        if name == "iotdb":
            shares = iotdb_node_limits(limits["iotdb"])
            memory = iotdb_jvm_memory(limits["iotdb"])
            note = ", ".join(
                f"{node} {shares[node]} MiB: heap {heap} + direct {direct}"
                for node, (heap, direct) in memory.items()
            )
        results.append(
            Measured(name, limits[name], after_start[name], current, peak, note)
        )
    return results


def _sum(pids: list[int]) -> tuple[float, float]:
    pairs = [memory_mib(pid) for pid in pids]
    return sum(p[0] for p in pairs), sum(p[1] for p in pairs)


def print_table(profile: str, rows: list[Measured]) -> None:
    """The measured figures against the budget, as a plain table."""
    print(f"\nfootprint on {profile} limits (MiB; RSS of the process tree)")
    header = f"{'service':16} {'budget':>7} {'start':>7} {'load':>7} {'peak':>7} ratio"
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row.service:16} {row.budget_mib:7d} {row.after_start_mib:7.1f} "
            f"{row.after_load_mib:7.1f} {row.peak_mib:7.1f} {row.ratio:5.2f}"
        )


@contextmanager
def work_dir() -> Iterator[Path]:
    """A scratch folder for the servers' data."""
    with tempfile.TemporaryDirectory(prefix="iotstack-footprint-") as path:
        yield Path(path)


def main() -> None:
    """Run the measurement and print (and optionally save) the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="t3.micro")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--engine", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()

    plan = build_plan(StackConfig(variant="minimal", host={"profile": args.profile}))
    limits = {name: service.memory_mib for name, service in plan.services.items()}
    influx = build_plan(StackConfig(backend="influxdb", host={"profile": args.profile}))
    limits["influxdb"] = influx.services["influxdb"].memory_mib

    with work_dir() as work, ExitStack() as stack:
        running = start_all(stack, work, limits)
        rows = measure(running, limits, lambda: run_load(running, args.rounds))
    print_table(args.profile, rows)

    engine = measure_engine() if args.engine else None
    if engine is not None:
        print(
            f"\nDocker engine: {engine['base_mib']:.1f} MiB idle "
            f"(budget {ENGINE_BASE_MIB}), {engine['per_container_mib']:.1f} MiB per "
            f"container (budget {ENGINE_PER_CONTAINER_MIB})"
        )

    result = {
        "profile": args.profile,
        "rounds": args.rounds,
        "measured": [row.__dict__ | {"ratio": round(row.ratio, 2)} for row in rows],
        "engine": engine,
    }
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    if args.write_docs:
        from budget_doc import write_budget_doc

        write_budget_doc(result)


if __name__ == "__main__":
    main()
