"""Edge-first end to end on real servers started from a rendered stack.

Mosquitto, Node-RED, Nginx and VictoriaMetrics run natively from the files
`iotstack render` wrote for an edge-first stack in host network mode; IoTDB is
the harness's real 1C1D, whose REST port the stack's config names. Readings
are replayed with `iotstack edge replay`, models published with `iotstack
model publish` and followed by `iotstack edge agent` through Nginx's /models/.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from harness.iotdb import IoTDBCluster
from harness.native import (
    ServerProcess,
    container_to_host_paths,
    free_port,
    start_mosquitto,
    start_nginx,
    start_node_red,
    start_victoriametrics,
    translate_config,
)
from harness.native_fixtures import ServerPool
from harness.waiting import poll
from iotstack.edge.contracts import problems
from iotstack.envfile import read_env
from test_edge_contracts import EXAMPLES, schema_accepts

pytestmark = pytest.mark.integration

SUCCESS = 200
VALIDATE_SCRIPT = """\
import os, sys
data = open(os.environ["IOTSTACK_MODEL_PATH"], "rb").read()
if b"BROKEN" in data:
    sys.exit("model answers nonsense on the reference input")
"""


@dataclass
class EdgeStack:
    """The rendered stack folder, its secrets and the running servers."""

    dir: Path
    env: dict[str, str]
    ports: dict[str, int]
    iotdb: IoTDBCluster
    victoriametrics: ServerProcess
    nodered: ServerProcess

    @property
    def broker(self) -> str:
        return f"127.0.0.1:{self.ports['mosquitto']}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}/models/"

    def iotdb_rows(self, sql: str) -> dict[str, Any]:
        body = self.iotdb.sql(sql, password=self.env["IOTDB_PASSWORD"]).json()
        assert body.get("code", SUCCESS) == SUCCESS, body
        return body


class Listener:
    """A real MQTT client that collects what arrives on some topic filters."""

    def __init__(self, port: int, user: str, password: str, filters: list[str]):
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"test-{uuid.uuid4().hex[:8]}"
        )
        self.client.username_pw_set(user, password)
        subscribed: queue.Queue[bool] = queue.Queue()
        self.client.on_message = lambda _c, _u, m: self.messages.put(
            (m.topic, m.payload)
        )
        self.client.on_subscribe = lambda *_args: subscribed.put(True)
        self.client.connect("127.0.0.1", port, keepalive=30)
        self.client.loop_start()
        self.client.subscribe([(topic, 1) for topic in filters])
        subscribed.get(timeout=10)

    def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def next(self, topic_prefix: str, timeout: float = 20.0) -> tuple[str, Any]:
        """The next message under `topic_prefix`, JSON-decoded."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no message on {topic_prefix} in {timeout} s")
            try:
                topic, payload = self.messages.get(timeout=left)
            except queue.Empty:
                continue
            if topic.startswith(topic_prefix):
                return topic, json.loads(payload)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _render_stack(stack: Path, ports: dict[str, int]) -> None:
    subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "init", "--dir", str(stack)]
        + ["--variant", "edge-first"],
        check=True,
        capture_output=True,
    )
    config_file = stack / "iotstack.yaml"
    config = yaml.safe_load(config_file.read_text())
    config |= {
        "network_mode": "host",
        "ports": ports,
        "services": {"ainode": False, "grafana": False},
        "edge": {
            "raw_rules": [
                {"topic": "iot/raw/#", "keep": True},
                {"topic": "iot/raw/+/+/vibration", "keep": False},
            ],
            "anomaly_threshold": 0.8,
        },
    }
    config_file.write_text(yaml.safe_dump(config))
    rendered = subprocess.run(
        [sys.executable, "-m", "iotstack.cli", "render", "--dir", str(stack)],
        capture_output=True,
        text=True,
    )
    assert rendered.returncode == 0, rendered.stdout + rendered.stderr


def _start_mosquitto(pool: ServerPool, stack: Path, root: Path) -> None:
    compose = stack / "docker-compose.yml"
    mapping = container_to_host_paths(compose, "mosquitto", root / "volumes")
    config = translate_config(
        stack / "mosquitto" / "config" / "mosquitto.conf",
        root / "mosquitto" / "mosquitto.conf",
        mapping,
    )
    pool.start(start_mosquitto, config)


def _start_nginx(pool: ServerPool, stack: Path, root: Path) -> None:
    mapping = container_to_host_paths(stack / "docker-compose.yml", "nginx")
    config = translate_config(
        stack / "nginx" / "nginx.conf", root / "nginx" / "nginx.conf", mapping
    )
    pool.start(start_nginx, config)


def _start_node_red(
    pool: ServerPool, stack: Path, root: Path, port: int, env: dict[str, str]
) -> ServerProcess:
    """Node-RED from the rendered user dir, with the stack's environment.

    Ready when the flow's own `GET /metrics` answers: the flows are running.
    """
    user_dir = root / "nodered"
    shutil.copytree(stack / "nodered", user_dir)
    names = (
        "MQTT_NODERED_USER",
        "MQTT_NODERED_PASSWORD",
        "IOTDB_USER",
        "IOTDB_PASSWORD",
        "NODERED_ADMIN_USER",
    )
    server_env = {name: env[name] for name in names} | {"TZ": "UTC"}
    return pool.start(
        start_node_red,
        user_dir,
        port,
        user_dir / "flows.json",
        env=server_env,
        ready_path="/metrics",
    )


@pytest.fixture(scope="module")
def edge_stack(
    tmp_path_factory: pytest.TempPathFactory, iotdb_server: IoTDBCluster
) -> Iterator[EdgeStack]:
    """The rendered edge-first stack with its servers running."""
    root = tmp_path_factory.mktemp("edge")
    stack = root / "stack"
    ports = {
        "victoriametrics": free_port(),
        "mosquitto": free_port(),
        "nodered": free_port(),
        "nginx": free_port(),
        "prometheus": free_port(),
        "iotdb": iotdb_server.rest_port,
    }
    _render_stack(stack, ports)
    env = read_env(stack / ".env")

    changed = iotdb_server.non_query(
        f"ALTER USER root SET PASSWORD '{env['IOTDB_PASSWORD']}'"
    ).json()
    assert changed["code"] == SUCCESS, changed
    pool = ServerPool(root / "run")
    try:
        vm = pool.start(
            start_victoriametrics, ports["victoriametrics"], root / "vm-data"
        )
        _start_mosquitto(pool, stack, root)
        _start_nginx(pool, stack, root)
        nodered = _start_node_red(pool, stack, root, ports["nodered"], env)
        yield EdgeStack(stack, env, ports, iotdb_server, vm, nodered)
    finally:
        pool.stop_all()
        # The session's IoTDB has direct memory for few data regions: free ours.
        iotdb_server.non_query(
            "DELETE DATABASE root.iot", password=env["IOTDB_PASSWORD"]
        )
        iotdb_server.non_query(
            f"ALTER USER root SET PASSWORD '{iotdb_server.password}'",
            password=env["IOTDB_PASSWORD"],
        )
        poll(
            lambda: (
                True
                if iotdb_server.sql("SHOW DATABASES").json().get("code", SUCCESS)
                == SUCCESS
                else None
            ),
            what="the old IoTDB password accepted again",
        )


@pytest.fixture
def listener(edge_stack: EdgeStack) -> Iterator[Listener]:
    """Sees dead letters and agent statuses; logs in as the device user."""
    client = Listener(
        edge_stack.ports["mosquitto"],
        "device",
        edge_stack.env["MQTT_DEVICE_PASSWORD"],
        ["iot/deadletter/#", "iot/edge/#"],
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def flow_live(edge_stack: EdgeStack) -> None:
    """Wait until Node-RED's MQTT subscriptions work: a probe gets dead-lettered."""
    probe = Listener(
        edge_stack.ports["mosquitto"],
        "device",
        edge_stack.env["MQTT_DEVICE_PASSWORD"],
        ["iot/deadletter/raw"],
    )
    try:
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            probe.publish("iot/raw/probe/probe/probe", "probe: not json")
            try:
                probe.next("iot/deadletter/raw", timeout=2)
                return
            except AssertionError:
                continue
        raise AssertionError(
            "Node-RED never processed an MQTT message:\n"
            + edge_stack.nodered.log_tail()
        )
    finally:
        probe.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _vm_export(stack: EdgeStack, match: str) -> list[dict[str, Any]] | None:
    url = stack.victoriametrics.url
    httpx.get(f"{url}/internal/force_flush", timeout=5)
    response = httpx.get(f"{url}/api/v1/export", params={"match[]": match}, timeout=5)
    response.raise_for_status()
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    return lines or None


def _iotdb_values(stack: EdgeStack, path: str, count: int) -> list[Any] | None:
    device, measurement = path.rsplit(".", 1)
    body = stack.iotdb.sql(
        f"SELECT {measurement} FROM {device}", password=stack.env["IOTDB_PASSWORD"]
    ).json()
    values = (body.get("values") or [[]])[0]
    return values if len(values) >= count else None


def _timeseries(stack: EdgeStack, pattern: str) -> list[str]:
    body = stack.iotdb_rows(f"SHOW TIMESERIES {pattern}")
    return (body.get("values") or [[]])[0]


def _nodered_metric(stack: EdgeStack, line_start: str) -> float | None:
    text = httpx.get(f"{stack.nodered.url}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "iotstack.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


# --- routing --------------------------------------------------------------------


def test_replayed_readings_land_where_the_raw_rules_say(
    edge_stack: EdgeStack, flow_live: None, tmp_path: Path
) -> None:
    site = _unique("site")
    now = int(time.time() * 1000)
    csv_file = tmp_path / "readings.csv"
    csv_file.write_text(
        "ts,site,device,metric,value\n"
        f"{now - 3000},{site},pump1,temperature,21.5\n"
        f"{now - 2000},{site},pump1,vibration,0.7\n"
        f"{now - 1000},{site},pump1,temperature,22.0\n"
        f"{now},{site},pump1,vibration,0.9\n"
    )

    replayed = _cli(
        "edge",
        "replay",
        str(csv_file),
        "--broker",
        edge_stack.broker,
        "--rate",
        "20",
        env={
            "IOTSTACK_MQTT_USER": "device",
            "IOTSTACK_MQTT_PASSWORD": edge_stack.env["MQTT_DEVICE_PASSWORD"],
        },
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "replayed 4 readings" in replayed.stdout

    kept = poll(
        lambda: _iotdb_values(edge_stack, f"root.iot.{site}.pump1.temperature", 2),
        what="kept raw samples in IoTDB",
    )
    assert kept == [21.5, 22.0]
    assert _timeseries(edge_stack, f"root.iot.{site}.pump1.vibration") == []
    assert _vm_export(edge_stack, f'{{site="{site}"}}') is None


def test_inference_goes_to_iotdb_and_victoriametrics_and_anomalies_to_alerts(
    edge_stack: EdgeStack, flow_live: None, listener: Listener
) -> None:
    site = _unique("site")
    now = int(time.time() * 1000)
    listener.publish(
        f"iot/inference/{site}/cam1/detector",
        json.dumps({"score": 0.95, "ts": now, "aggregates": {"mean": 1.5}}),
    )
    listener.publish(
        f"iot/inference/{site}/cam2/detector", json.dumps({"score": 0.2, "ts": now})
    )

    score = poll(
        lambda: _iotdb_values(edge_stack, f"root.iot.{site}.cam1.detector_score", 1),
        what="the inference score in IoTDB",
    )
    flagged = _iotdb_values(edge_stack, f"root.iot.{site}.cam1.detector_anomaly", 1)
    mean = _iotdb_values(edge_stack, f"root.iot.{site}.cam1.detector_mean", 1)
    assert (score, flagged, mean) == ([0.95], [True], [1.5])
    assert poll(
        lambda: _iotdb_values(edge_stack, f"root.iot.{site}.cam2.detector_anomaly", 1),
        what="the second result in IoTDB",
    ) == [False]

    inference = poll(
        lambda: _vm_export(edge_stack, f'iot_inference_score{{site="{site}"}}'),
        what="inference scores in VictoriaMetrics",
    )
    by_device = {s["metric"]["device"]: s["values"] for s in inference}
    assert by_device == {"cam1": [0.95], "cam2": [0.2]}
    anomalies = _vm_export(edge_stack, f'iot_anomaly_score{{site="{site}"}}')
    assert anomalies is not None
    assert [(a["metric"]["device"], a["values"]) for a in anomalies] == [
        ("cam1", [0.95])
    ]
    counted = _nodered_metric(
        edge_stack, f'iotstack_anomalies_total{{site="{site}",device="cam1"'
    )
    assert counted == 1.0


def test_malformed_payload_goes_to_the_dead_letter_topic_with_a_reason(
    edge_stack: EdgeStack, flow_live: None, listener: Listener
) -> None:
    topic = f"iot/raw/{_unique('site')}/pump1/temperature"

    listener.publish(topic, '{"value": "hot"}')
    letter: dict[str, Any] = {}
    while letter.get("topic") != topic:
        _, letter = listener.next("iot/deadletter/raw")

    assert problems("dead-letter", letter) == []
    assert letter["reason"] == "value must be a finite number"
    assert letter["topic"] == topic
    assert letter["payload"] == '{"value": "hot"}'


def test_flow_and_schemas_agree_on_every_example(
    edge_stack: EdgeStack, flow_live: None, listener: Listener
) -> None:
    site = _unique("site")
    rejected: dict[str, str] = {}
    for index, (route, segment, payload, _valid) in enumerate(EXAMPLES):
        topic = f"iot/{route}/{site}/dev{index}/{segment}"
        listener.publish(topic, payload)

    expected_rejections = sum(1 for *_rest, valid in EXAMPLES if not valid)
    deadline = time.monotonic() + 30
    while len(rejected) < expected_rejections and time.monotonic() < deadline:
        try:
            _, letter = listener.next("iot/deadletter/", timeout=1)
        except AssertionError:
            continue
        if f"/{site}/" in letter["topic"]:
            rejected[letter["topic"]] = letter["reason"]
    time.sleep(1.0)  # a valid example that was wrongly refused would show up now
    while not listener.messages.empty():
        _topic, payload = listener.messages.get()
        letter = json.loads(payload)
        if f"/{site}/" in letter.get("topic", ""):
            rejected[letter["topic"]] = letter["reason"]

    verdicts = {
        f"iot/{route}/{site}/dev{index}/{segment}": (
            schema_accepts(route, payload),
            f"iot/{route}/{site}/dev{index}/{segment}" not in rejected,
        )
        for index, (route, segment, payload, _valid) in enumerate(EXAMPLES)
    }
    disagreements = {
        topic: {"schema": schema, "flow": flow, "reason": rejected.get(topic)}
        for topic, (schema, flow) in verdicts.items()
        if schema != flow
    }
    assert disagreements == {}


# --- model registry and over-the-air update ---------------------------------------


@pytest.fixture
def agent(edge_stack: EdgeStack, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`iotstack edge agent` following the stack's registry; yields id and dir."""
    agent_id = _unique("gw")
    models_dir = tmp_path / "models"
    validate = tmp_path / "validate.py"
    validate.write_text(VALIDATE_SCRIPT)
    log = (tmp_path / "agent.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "iotstack.cli", "edge", "agent"]
        + ["--broker", edge_stack.broker, "--registry", edge_stack.registry_url]
        + ["--models-dir", str(models_dir), "--agent-id", agent_id]
        + ["--validate", f"{sys.executable} {validate}", "--run-for", "110"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "IOTSTACK_MQTT_USER": "device",
            "IOTSTACK_MQTT_PASSWORD": edge_stack.env["MQTT_DEVICE_PASSWORD"],
        },
    )
    yield agent_id, models_dir
    process.terminate()
    process.wait(timeout=15)
    log.close()


def _status(listener: Listener, agent_id: str, result: str | None) -> dict[str, Any]:
    """The agent's next status whose last outcome is `result`."""
    while True:
        _, status = listener.next(f"iot/edge/{agent_id}/status", timeout=30)
        last = status["last"] or {}
        if last.get("result") == result:
            return status


def _publish_model(
    stack: EdgeStack, path: Path, version: str, *extra: str
) -> dict[str, Any]:
    published = _cli(
        "model",
        "publish",
        str(path),
        "--name",
        "detector",
        "--version",
        version,
        "--framework",
        "onnx",
        "--dir",
        str(stack.dir),
        "--json",
        *extra,
    )
    assert published.returncode == 0, published.stderr
    return json.loads(published.stdout)["model"]


def test_published_models_reach_the_agent_bad_ones_are_refused_or_rolled_back(
    edge_stack: EdgeStack,
    listener: Listener,
    agent: tuple[str, Path],
    tmp_path: Path,
) -> None:
    agent_id, models_dir = agent
    assert _status(listener, agent_id, None)["models"] == {}
    good = tmp_path / "detector-v1.onnx"
    good.write_bytes(b"weights v1 " * 1000)

    entry = _publish_model(edge_stack, good, "1.0.0")
    installed = _status(listener, agent_id, "installed")
    current = models_dir / "detector" / "current"
    assert installed["models"]["detector"] == {
        "version": "1.0.0",
        "sha256": entry["sha256"],
    }
    assert (current / "detector-v1.onnx").read_bytes() == good.read_bytes()
    served = httpx.get(edge_stack.registry_url + entry["url"], timeout=5)
    assert served.content == good.read_bytes()

    corrupt = tmp_path / "detector-v2.onnx"
    corrupt.write_bytes(b"weights v2 " * 1000)
    entry2 = _publish_model(edge_stack, corrupt, "2.0.0", "--no-announce")
    stored = edge_stack.dir / "registry" / "detector" / "2.0.0" / "detector-v2.onnx"
    stored.write_bytes(b"weights v2 " * 999 + b"weights v? ")
    listener.publish("iot/models/detector", json.dumps(entry2), retain=True)
    refused = _status(listener, agent_id, "refused")
    assert refused["last"]["version"] == "2.0.0"
    assert refused["last"]["reason"].startswith("checksum mismatch")
    assert refused["models"]["detector"]["version"] == "1.0.0"
    assert not (models_dir / "detector" / "versions" / "2.0.0").exists()

    failing = tmp_path / "detector-v3.onnx"
    failing.write_bytes(b"BROKEN weights v3")
    _publish_model(edge_stack, failing, "3.0.0")
    rolled_back = _status(listener, agent_id, "rolled_back")
    assert rolled_back["last"]["version"] == "3.0.0"
    assert "validation hook exited 1" in rolled_back["last"]["reason"]
    assert rolled_back["models"]["detector"]["version"] == "1.0.0"
    assert (current / "detector-v1.onnx").read_bytes() == good.read_bytes()

    better = tmp_path / "detector-v4.onnx"
    better.write_bytes(b"weights v4 " * 1000)
    _publish_model(edge_stack, better, "4.0.0")
    upgraded = _status(listener, agent_id, "installed")
    previous = models_dir / "detector" / "previous"
    assert upgraded["models"]["detector"]["version"] == "4.0.0"
    assert (previous / "detector-v1.onnx").read_bytes() == good.read_bytes()
    listed = _cli("model", "list", "--dir", str(edge_stack.dir), "--json")
    assert [m["version"] for m in json.loads(listed.stdout)] == [
        "1.0.0",
        "2.0.0",
        "3.0.0",
        "4.0.0",
    ]
    index = httpx.get(edge_stack.registry_url + "manifest.json", timeout=5).json()
    assert problems("registry-manifest", index) == []
    assert index["latest"] == {"detector": "4.0.0"}
