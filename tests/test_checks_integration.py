"""`iotstack check` against real servers started from a rendered host-network stack.

One minimal stack (VictoriaMetrics, Prometheus, Mosquitto, Node-RED, IoTDB,
Nginx) is rendered with free ports and started once for the module; the
failure tests at the end stop the servers one after another, so they run last
and in file order.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from harness.iotdb import IoTDBCluster, free_ports, iotdb_jars_present, iotdb_lib_dir
from harness.native import (
    MissingBinaryError,
    ServerProcess,
    container_to_host_paths,
    create_influxdb_admin,
    find_binary,
    free_port,
    start_influxdb,
    start_mosquitto,
    start_nginx,
    start_node_red,
    start_prometheus,
    start_victoriametrics,
    translate_config,
    write_influxdb_config,
)
from iotstack.envfile import read_env
from iotstack.render import render_stack

pytestmark = pytest.mark.integration

SERVICES = ("victoriametrics", "prometheus", "mosquitto", "nodered", "iotdb", "nginx")
# IoTDB ports the template fixes (fine inside a container, clashing on a shared
# host): each gets a free port here, and Prometheus' IoTDB target follows.
IOTDB_FIXED_PORTS = (
    "cn_internal_port",
    "cn_consensus_port",
    "dn_rpc_port",
    "dn_internal_port",
    "dn_mpp_data_exchange_port",
    "dn_schema_region_consensus_port",
    "dn_data_region_consensus_port",
    "dn_metric_prometheus_reporter_port",
)


@dataclass
class RunningStack:
    """The rendered stack folder and the real servers started from it."""

    root: Path
    ports: dict[str, int]
    servers: dict[str, ServerProcess] = field(default_factory=dict)
    iotdb: IoTDBCluster | None = None

    @property
    def env(self) -> dict[str, str]:
        return read_env(self.root / ".env")

    def stop(self, name: str) -> None:
        if name == "iotdb":
            assert self.iotdb is not None
            self.iotdb.stop()
        else:
            self.servers[name].stop()


def run_check(stack_dir: Path, *args: str, timeout: float = 30) -> tuple[int, str, str]:
    """`iotstack check` as a user runs it; returns exit code, stdout, stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "check", "--dir", str(stack_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout + 60,
        env={**os.environ, "COLUMNS": "200"},
    )
    return done.returncode, done.stdout, done.stderr


def check_rows(stack_dir: Path, *args: str) -> tuple[int, dict[str, dict]]:
    """Run the check with `--json`; rows by check name."""
    code, out, err = run_check(stack_dir, "--json", *args)
    assert out, err
    return code, {row["check"]: row for row in json.loads(out)["checks"]}


def _require(name: str) -> None:
    try:
        find_binary(name)
    except MissingBinaryError as exc:
        pytest.skip(str(exc))


def _write_config(root: Path, ports: dict[str, int], **extra: object) -> None:
    config = {
        "variant": "minimal",
        "network_mode": "host",
        "front_door_address": "127.0.0.1",
        "ports": ports,
        "services": {"grafana": False, "ainode": False},
        **extra,
    }
    root.mkdir(parents=True, exist_ok=True)
    (root / "iotstack.yaml").write_text(yaml.safe_dump(config))


def _native_iotdb_conf(root: Path, conf_dir: Path) -> int:
    """The rendered properties with free ports; returns the new metrics port."""
    text = (root / "iotdb" / "iotdb-system.properties").read_text()
    ports = dict(
        zip(IOTDB_FIXED_PORTS, free_ports(len(IOTDB_FIXED_PORTS)), strict=True)
    )
    for key, port in ports.items():
        text = re.sub(rf"^{key}=.*$", f"{key}={port}", text, flags=re.M)
    seed = f"127.0.0.1:{ports['cn_internal_port']}"
    text = re.sub(
        r"^(cn|dn)_seed_config_node=.*$",
        rf"\1_seed_config_node={seed}",
        text,
        flags=re.M,
    )

    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "iotdb-system.properties").write_text(text)
    return ports["dn_metric_prometheus_reporter_port"]


def _start_node_red(root: Path, port: int, env: dict[str, str], run_dir: Path):
    """Node-RED on the rendered user folder, with the variables compose passes."""
    user_dir = root / "nodered"
    names = (
        "NODERED_ADMIN_USER",
        "MQTT_NODERED_USER",
        "MQTT_NODERED_PASSWORD",
        "IOTDB_USER",
        "IOTDB_PASSWORD",
        "INFLUXDB_ADMIN_USER",
        "INFLUXDB_ADMIN_PASSWORD",
    )
    return start_node_red(
        user_dir,
        port,
        user_dir / "flows.json",
        env={name: env[name] for name in names if name in env},
        ready_path="/metrics",
        run_dir=run_dir,
    )


@pytest.fixture(scope="session")
def running_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """Render the stack, start every server from its rendered config, yield it."""
    for binary in ("victoria-metrics", "prometheus", "mosquitto", "nginx", "node-red"):
        _require(binary)
    if not iotdb_jars_present():
        pytest.skip(f"IoTDB jars not in {iotdb_lib_dir()}; run scripts/deps/iotdb.sh")

    base = tmp_path_factory.mktemp("checked-stack")
    root = base / "stack"
    ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
    _write_config(root, ports)
    render_stack(root)
    stack = RunningStack(root=root, ports=ports)
    compose = root / "docker-compose.yml"
    runs = base / "run"

    try:
        metrics_port = _native_iotdb_conf(root, base / "iotdb-conf")
        stack.iotdb = IoTDBCluster(
            conf_dir=base / "iotdb-conf", work_dir=runs / "iotdb"
        )
        stack.iotdb.start()
        stack.iotdb.non_query(
            f"ALTER USER root SET PASSWORD '{stack.env['IOTDB_PASSWORD']}'"
        )
        stack.iotdb.password = stack.env["IOTDB_PASSWORD"]

        stack.servers["victoriametrics"] = start_victoriametrics(
            ports["victoriametrics"], base / "vm-data", run_dir=runs / "vm"
        )

        mounts = container_to_host_paths(compose, "mosquitto", base / "volumes")
        mosquitto_conf = translate_config(
            root / "mosquitto/config/mosquitto.conf", runs / "mosquitto.conf", mounts
        )
        stack.servers["mosquitto"] = start_mosquitto(
            mosquitto_conf, run_dir=runs / "mosquitto"
        )

        stack.servers["nodered"] = _start_node_red(
            root, ports["nodered"], stack.env, runs / "nodered"
        )

        mounts = container_to_host_paths(compose, "prometheus", base / "volumes")
        prometheus_conf = translate_config(
            root / "prometheus/prometheus.yml", runs / "prometheus.yml", mounts
        )
        prometheus_conf.write_text(
            prometheus_conf.read_text().replace(
                "127.0.0.1:9091", f"127.0.0.1:{metrics_port}"
            )
        )
        stack.servers["prometheus"] = start_prometheus(
            prometheus_conf,
            ports["prometheus"],
            base / "prometheus-data",
            ["--web.enable-lifecycle"],
            run_dir=runs / "prometheus",
        )

        stack.servers["nginx"] = start_nginx(
            root / "nginx/nginx.conf", ports["nginx"], run_dir=runs / "nginx"
        )
        yield stack
    finally:
        for server in stack.servers.values():
            server.stop()
        if stack.iotdb is not None:
            stack.iotdb.stop()


def _variant_dir(stack: RunningStack, name: str, env_changes: dict[str, str], **config):
    """A second stack folder for the same servers: other config or `.env` values."""
    root = stack.root.parent / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    config_data = yaml.safe_load((stack.root / "iotstack.yaml").read_text()) | config
    (root / "iotstack.yaml").write_text(yaml.safe_dump(config_data))
    env = stack.env | env_changes
    (root / ".env").write_text("".join(f"{k}='{v}'\n" for k, v in env.items()))
    return root


# --- a healthy stack ----------------------------------------------------------


def test_every_check_passes_on_the_running_stack(running_stack: RunningStack) -> None:
    code, rows = check_rows(running_stack.root)

    assert {name: row["detail"] for name, row in rows.items() if not row["ok"]} == {}
    assert code == 0
    assert set(rows) == {"victoriametrics", "iotdb", "prometheus", "pipeline", "nginx"}
    assert all(row["latency_ms"] > 0 for row in rows.values())
    assert rows["nginx"]["detail"].endswith("/nodered/comms WebSocket 101")
    assert "remote_write reaches VictoriaMetrics" in rows["prometheus"]["detail"]
    assert "telemetry→metrics" in rows["pipeline"]["detail"]
    assert "telemetry→iotdb" in rows["pipeline"]["detail"]


def test_pipeline_probe_lands_with_its_tags(running_stack: RunningStack) -> None:
    vm = f"http://127.0.0.1:{running_stack.ports['victoriametrics']}"
    series = httpx.get(
        f"{vm}/api/v1/series", params={"match[]": 'iot_probe{site="iotstack_check"}'}
    ).json()["data"]

    assert series, "the pipeline probe left no iot_probe series in VictoriaMetrics"
    assert {"__name__", "site", "device"} <= set(series[0])


def test_table_output_shows_results_and_no_secret(running_stack: RunningStack) -> None:
    code, out, err = run_check(running_stack.root)

    assert code == 0, out + err
    assert out.count("pass") == 5
    for key, value in running_stack.env.items():
        if "PASSWORD" in key or key == "IOTSTACK_SALT":
            assert value not in out + err


# --- bad input and wrong credentials -------------------------------------------


@pytest.mark.parametrize(
    "endpoint", ["victoriametrics", "nosuch=http://x:1", "iotdb=ftp://h"]
)
def test_malformed_endpoint_is_bad_input(
    running_stack: RunningStack, endpoint: str
) -> None:
    code, out, err = run_check(running_stack.root, "--endpoint", endpoint)

    assert code == 2
    assert "--endpoint" in err
    assert "Traceback" not in err


def test_wrong_iotdb_password_is_an_auth_failure(running_stack: RunningStack) -> None:
    root = _variant_dir(running_stack, "wrong-iotdb", {"IOTDB_PASSWORD": "not-it"})

    code, rows = check_rows(root)

    assert code == 1
    assert rows["iotdb"]["detail"] == (
        f"IoTDB at http://127.0.0.1:{running_stack.ports['iotdb']} refused the login "
        "of user 'root' (wrong password in .env?)"
    )
    assert rows["victoriametrics"]["ok"]


def test_wrong_mqtt_password_is_an_auth_failure(running_stack: RunningStack) -> None:
    root = _variant_dir(running_stack, "wrong-mqtt", {"MQTT_DEVICE_PASSWORD": "not-it"})

    code, rows = check_rows(root)

    assert code == 1
    assert rows["pipeline"]["detail"].startswith(
        f"Mosquitto at mqtt://127.0.0.1:{running_stack.ports['mosquitto']} refused "
        "the login of user 'device'"
    )


def test_ainode_missing_and_grafana_unreachable(running_stack: RunningStack) -> None:
    grafana_port = free_port()
    ports = running_stack.ports | {"grafana": grafana_port}
    root = _variant_dir(running_stack, "with-ainode", {}, services={}, ports=ports)

    code, rows = check_rows(
        root, "--endpoint", f"grafana=http://127.0.0.1:{grafana_port}"
    )

    assert code == 1
    iotdb_url = f"http://127.0.0.1:{running_stack.ports['iotdb']}"
    assert rows["ainode"]["detail"] == f"no AINode registered with IoTDB at {iotdb_url}"
    assert rows["grafana"]["detail"] == (
        f"Grafana is not reachable at http://127.0.0.1:{grafana_port} "
        "(connection refused)"
    )
    assert rows["iotdb"]["ok"] and rows["victoriametrics"]["ok"]


def test_edge_first_routes_reach_their_stores(running_stack: RunningStack) -> None:
    """Edge-first: raw → IoTDB, inference → IoTDB and VictoriaMetrics.

    A second Node-RED runs the edge-first flows against the same servers.
    """
    ports = running_stack.ports | {"nodered": free_port()}
    # Its own project name gives it its own MQTT client id: the broker would
    # otherwise disconnect the first Node-RED to let the second one in.
    root = _variant_dir(
        running_stack,
        "edge-first",
        {},
        variant="edge-first",
        ports=ports,
        project="edgecheck",
    )
    render_stack(root)
    run_dir = root.parent / "run" / "nodered-edge"
    nodered = _start_node_red(root, ports["nodered"], running_stack.env, run_dir)

    try:
        code, rows = check_rows(root)
    finally:
        nodered.stop()

    assert rows["pipeline"]["ok"], rows["pipeline"]["detail"]
    assert rows["pipeline"]["detail"] == (
        "found in raw→iotdb, inference→iotdb, inference→metrics"
    )


# --- servers stopped one after another (keep these last, in this order) ---------

STOP_ORDER = [
    ("nginx", "nginx", "Nginx", ["victoriametrics", "iotdb", "prometheus", "pipeline"]),
    (
        "prometheus",
        "prometheus",
        "Prometheus",
        ["victoriametrics", "iotdb", "pipeline"],
    ),
    ("victoriametrics", "victoriametrics", "VictoriaMetrics", ["iotdb"]),
    ("mosquitto", "pipeline", "Mosquitto", ["iotdb"]),
    ("nodered", "pipeline", "Node-RED", ["iotdb"]),
    ("iotdb", "iotdb", "IoTDB", []),
]


@pytest.mark.parametrize(("server", "check", "label", "still_ok"), STOP_ORDER)
def test_stopped_server_fails_its_check_only(
    running_stack: RunningStack,
    server: str,
    check: str,
    label: str,
    still_ok: list[str],
) -> None:
    running_stack.stop(server)
    scheme = "mqtt" if server == "mosquitto" else "http"

    code, rows = check_rows(running_stack.root, "--timeout", "30")

    assert code == 1
    url = f"{scheme}://127.0.0.1:{running_stack.ports[server]}"
    assert rows[check]["detail"] == (
        f"{label} is not reachable at {url} (connection refused)"
    )
    assert set(rows) == {"victoriametrics", "iotdb", "prometheus", "pipeline", "nginx"}
    failed = {name: rows[name]["detail"] for name in still_ok if not rows[name]["ok"]}
    assert failed == {}


# --- InfluxDB backend (its own real server) ------------------------------------


@pytest.fixture(scope="module")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A real InfluxDB with auth on; yields its URL and admin password."""
    _require("influxd")
    root = tmp_path_factory.mktemp("check-influxdb")
    config = write_influxdb_config(
        root / "influxdb.conf",
        root / "var",
        http_port=free_port(),
        rpc_port=free_port(),
    )
    server = start_influxdb(config, run_dir=root / "run")
    password = "p" + os.urandom(8).hex()
    try:
        create_influxdb_admin(server.url, "admin", password, "iot")
        yield server.url, password
    finally:
        server.stop()


def _env_only_dir(tmp_path: Path, password: str) -> Path:
    (tmp_path / ".env").write_text(
        f"INFLUXDB_DB='iot'\nINFLUXDB_ADMIN_USER='admin'\nINFLUXDB_ADMIN_PASSWORD='{password}'\n"
    )
    return tmp_path


def test_influxdb_check_writes_and_queries(influxdb, tmp_path: Path) -> None:
    url, password = influxdb

    code, rows = check_rows(
        _env_only_dir(tmp_path, password), "--endpoint", f"influxdb={url}"
    )

    assert code == 0, rows
    assert list(rows) == ["influxdb"]
    assert (
        rows["influxdb"]["detail"] == "authenticated write and query in database 'iot'"
    )


def test_influxdb_wrong_password_is_an_auth_failure(influxdb, tmp_path: Path) -> None:
    url, _ = influxdb

    code, rows = check_rows(
        _env_only_dir(tmp_path, "wrong"), "--endpoint", f"influxdb={url}"
    )

    assert code == 1
    assert rows["influxdb"]["detail"] == (
        f"InfluxDB at {url} refused the login of user 'admin' (wrong password in .env?)"
    )
