"""A rendered minimal stack whose services run natively on 127.0.0.1.

iotstack renders the stack with `network_mode: host` and free ports, then the
real servers start from the rendered configs through the test harness
(tests/harness/native.py and iotdb.py): Mosquitto, VictoriaMetrics, Node-RED
with the rendered flows, Prometheus, nginx and a real IoTDB 1C1D. Grafana and
AINode have no package here and are switched off. The stack is started once
per benchmark run and shared by the benchmarks that need it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from benchmarks.measure import REPO, BenchmarkError, python_bin
from benchmarks.results import Options
from iotstack.runtime.project import read_env_file

sys.path.insert(0, str(REPO / "tests"))

from harness import iotdb, native  # noqa: E402

SERVICES_OFF = {"grafana": False, "ainode": False}


@dataclass
class NativeStack:
    """The rendered folder, its secrets and where each running server answers."""

    stack_dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    iotdb: iotdb.IoTDBCluster
    servers: dict[str, native.ServerProcess] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        """http://127.0.0.1:<port of service><path>."""
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def stop(self) -> None:
        """Stop every server, newest first."""
        for server in reversed(list(self.servers.values())):
            server.stop()
        self.iotdb.stop()


def shared_stack(options: Options) -> NativeStack:
    """The run's native stack, started on first use and stopped at the end."""
    if "native_stack" not in options.shared:
        stack = start_native_stack(options.work_dir / "native-stack")
        options.resources.callback(stack.stop)
        options.shared["native_stack"] = stack
    return options.shared["native_stack"]


def start_native_stack(root: Path) -> NativeStack:
    """Render the minimal variant for host networking and start its servers."""
    if not iotdb.iotdb_jars_present():
        raise BenchmarkError("IoTDB jars missing: run scripts/install-test-deps.sh")
    for binary in ("victoria-metrics", "mosquitto", "node-red", "prometheus", "nginx"):
        native.find_binary(binary)

    root.mkdir(parents=True, exist_ok=True)
    iotdb_ports = iotdb.allocate_ports()
    ports = {
        "victoriametrics": native.free_port(),
        "prometheus": native.free_port(),
        "mosquitto": native.free_port(),
        "nodered": native.free_port(),
        "nginx": native.free_port(),
        "iotdb": iotdb_ports.rest,
    }
    stack_dir = _render(root / "stack", ports)
    env = read_env_file(stack_dir / ".env")

    ports["iotdb-metrics"] = native.free_port()
    cluster = _start_iotdb(
        root / "iotdb", iotdb_ports, env["IOTDB_PASSWORD"], ports["iotdb-metrics"]
    )
    stack = NativeStack(stack_dir, env, ports, cluster)
    try:
        _start_servers(stack, root)
    except BaseException:
        stack.stop()
        raise
    return stack


def _render(stack_dir: Path, ports: dict[str, int]) -> Path:
    """`iotstack init` + `render` with host networking and the given ports."""
    iotstack = python_bin("iotstack")
    subprocess.run(
        [iotstack, "init", "--dir", str(stack_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    config_file = stack_dir / "iotstack.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.update(network_mode="host", ports=ports, services=SERVICES_OFF)
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    subprocess.run(
        [iotstack, "render", "--dir", str(stack_dir)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return stack_dir


def _start_iotdb(
    root: Path, ports: iotdb.IoTDBPorts, password: str, metrics_port: int
) -> iotdb.IoTDBCluster:
    """IoTDB 1C1D on the stack's REST port; root's password set as the stack does.

    Its Prometheus reporter is on, as rendered, but on a free port.
    """
    conf_dir = root / "conf"
    metrics = {
        "dn_metric_reporter_list": "PROMETHEUS",
        "dn_metric_prometheus_reporter_port": str(metrics_port),
    }
    iotdb.write_minimal_properties(conf_dir, ports, extra=metrics)
    cluster = iotdb.IoTDBCluster(conf_dir=conf_dir, work_dir=root / "work")
    cluster.start()

    answer = cluster.non_query(f"ALTER USER root SET PASSWORD '{password}'").json()
    if answer.get("code") != 200:
        cluster.stop()
        raise BenchmarkError(f"could not set the IoTDB root password: {answer}")
    cluster.password = password
    return cluster


def _start_servers(stack: NativeStack, root: Path) -> None:
    """The native servers, each from its rendered config."""
    compose = stack.stack_dir / "docker-compose.yml"
    volumes = root / "volumes"

    stack.servers["victoriametrics"] = native.start_victoriametrics(
        stack.ports["victoriametrics"], volumes / "victoriametrics", run_dir=root / "vm"
    )

    mapping = native.container_to_host_paths(compose, "mosquitto", volume_root=volumes)
    broker_config = native.translate_config(
        stack.stack_dir / "mosquitto" / "config" / "mosquitto.conf",
        root / "mosquitto.conf",
        mapping,
    )
    stack.servers["mosquitto"] = native.start_mosquitto(
        broker_config, run_dir=root / "mosquitto"
    )

    mapping = native.container_to_host_paths(compose, "prometheus", volume_root=volumes)
    prometheus_config = native.translate_config(
        stack.stack_dir / "prometheus" / "prometheus.yml",
        root / "prometheus.yml",
        mapping,
    )
    iotdb_target = f"127.0.0.1:{stack.ports['iotdb-metrics']}"
    prometheus_config.write_text(
        prometheus_config.read_text().replace("127.0.0.1:9091", iotdb_target)
    )
    stack.servers["prometheus"] = native.start_prometheus(
        prometheus_config,
        stack.ports["prometheus"],
        volumes / "prometheus-tsdb",
        run_dir=root / "prometheus",
    )

    stack.servers["nginx"] = native.start_nginx(
        stack.stack_dir / "nginx" / "nginx.conf",
        stack.ports["nginx"],
        run_dir=root / "nginx",
    )
    stack.servers["nodered"] = _start_node_red(stack, root / "nodered")


def _start_node_red(stack: NativeStack, run_dir: Path) -> native.ServerProcess:
    """Node-RED on a copy of the rendered /data folder, with the stack's env."""
    user_dir = run_dir / "data"
    shutil.copytree(stack.stack_dir / "nodered", user_dir)
    keys = (
        "NODERED_ADMIN_USER",
        "MQTT_NODERED_USER",
        "MQTT_NODERED_PASSWORD",
        "IOTDB_USER",
        "IOTDB_PASSWORD",
    )
    return native.start_node_red(
        user_dir,
        stack.ports["nodered"],
        user_dir / "flows.json",
        env={key: stack.env[key] for key in keys if key in stack.env} | {"TZ": "UTC"},
        ready_path="/metrics",
        run_dir=run_dir,
        timeout=90.0,
    )


def node_red_counters(stack: NativeStack, client: httpx.Client) -> dict[str, float]:
    """Node-RED's `/metrics` counters as {'name{labels}': value}."""
    text = client.get(stack.url("nodered", "/metrics")).text
    counters = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            counters[key] = float(value)
    return counters


def wait_until(condition, timeout: float, interval: float = 0.2) -> bool:
    """Poll ``condition`` until it is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False
