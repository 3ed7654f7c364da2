"""The native harness starts each real server and each one really answers."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from queue import Queue

import httpx
import paho.mqtt.client as mqtt
import pytest

from harness.mqtt import connect, mqtt_client
from harness.native import (
    LOCALHOST,
    ServerProcess,
    check_nginx_config,
    check_prometheus_config,
    container_to_host_paths,
    free_port,
    start_mosquitto,
    start_nginx,
    start_node_red,
    translate_config,
    write_mosquitto_password_file,
)
from harness.native_fixtures import InfluxDBServer, MosquittoServer, ServerPool
from harness.waiting import poll

pytestmark = pytest.mark.integration


def _probe_name() -> str:
    return f"harness_probe_{uuid.uuid4().hex[:10]}"


# --- VictoriaMetrics -----------------------------------------------------------


def _vm_flush(server: ServerProcess) -> None:
    """Make fresh samples searchable now rather than after the ~1 s flush."""
    httpx.get(f"{server.url}/internal/force_flush", timeout=5).raise_for_status()


def _vm_export(server: ServerProcess, match: str) -> list[dict] | None:
    response = httpx.get(
        f"{server.url}/api/v1/export", params={"match[]": match}, timeout=5
    )
    response.raise_for_status()
    lines = [json.loads(line) for line in response.text.splitlines() if line]
    return lines or None


def test_victoriametrics_returns_an_imported_sample(
    victoriametrics_server: ServerProcess,
) -> None:
    name = _probe_name()
    timestamp_ms = int(time.time() * 1000)

    response = httpx.post(
        f"{victoriametrics_server.url}/api/v1/import/prometheus",
        content=f'{name}{{source="harness"}} 42.5 {timestamp_ms}\n',
    )
    assert response.status_code == 204

    _vm_flush(victoriametrics_server)
    series = poll(lambda: _vm_export(victoriametrics_server, name))
    assert series[0]["metric"] == {"__name__": name, "source": "harness"}
    assert series[0]["values"] == [42.5]
    assert series[0]["timestamps"] == [timestamp_ms]


def test_victoriametrics_accepts_influx_line_protocol(
    victoriametrics_server: ServerProcess,
) -> None:
    name = _probe_name()

    response = httpx.post(
        f"{victoriametrics_server.url}/write",
        params={"db": "iot"},
        content=f"{name},device=d1 temperature=21.5\n",
    )
    assert response.status_code == 204

    _vm_flush(victoriametrics_server)
    series = poll(lambda: _vm_export(victoriametrics_server, f"{name}_temperature"))
    assert series[0]["metric"]["device"] == "d1"
    assert series[0]["metric"]["db"] == "iot"
    assert series[0]["values"] == [21.5]


# --- InfluxDB ------------------------------------------------------------------


def _influx_select(influx: InfluxDBServer, measurement: str) -> list | None:
    response = httpx.get(
        f"{influx.url}/query",
        params={"db": influx.database, "q": f'SELECT * FROM "{measurement}"'},
        auth=(influx.user, influx.password),
    )
    response.raise_for_status()
    series = response.json()["results"][0].get("series")
    return series[0]["values"] if series else None


def test_influxdb_authenticated_write_is_read_back(
    influxdb_server: InfluxDBServer,
) -> None:
    name = _probe_name()

    response = httpx.post(
        f"{influxdb_server.url}/write",
        params={"db": influxdb_server.database, "precision": "s"},
        content=f"{name},device=d1 value=7.25 1700000000\n",
        auth=(influxdb_server.user, influxdb_server.password),
    )
    assert response.status_code == 204

    rows = _influx_select(influxdb_server, name)
    assert rows == [["2023-11-14T22:13:20Z", "d1", 7.25]]


def test_influxdb_rejects_a_wrong_password_and_no_password(
    influxdb_server: InfluxDBServer,
) -> None:
    query = {"db": influxdb_server.database, "q": "SHOW MEASUREMENTS"}

    wrong = httpx.get(
        f"{influxdb_server.url}/query",
        params=query,
        auth=(influxdb_server.user, "not-the-password"),
    )
    anonymous = httpx.get(f"{influxdb_server.url}/query", params=query)

    assert wrong.status_code == 401
    assert anonymous.status_code == 401


# --- Prometheus ----------------------------------------------------------------


def test_prometheus_is_ready_and_scrapes_itself(
    prometheus_server: ServerProcess,
) -> None:
    ready = httpx.get(f"{prometheus_server.url}/-/ready")
    assert ready.status_code == 200

    def scraped_up() -> list | None:
        response = httpx.get(
            f"{prometheus_server.url}/api/v1/query", params={"query": "up"}
        )
        return response.json()["data"]["result"] or None

    result = poll(scraped_up)
    assert result[0]["metric"]["job"] == "prometheus"
    assert result[0]["value"][1] == "1"


def test_promtool_accepts_a_good_config_and_rejects_a_bad_one(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.yml"
    good.write_text("scrape_configs:\n  - job_name: ok\n    scrape_interval: 15s\n")
    bad = tmp_path / "bad.yml"
    bad.write_text("scrape_configs:\n  - job_name: bad\n    scrape_interval: often\n")

    accepted = check_prometheus_config(good)
    rejected = check_prometheus_config(bad)

    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert rejected.returncode == 1
    assert "often" in rejected.stdout + rejected.stderr


# --- Mosquitto -----------------------------------------------------------------


def _publish_and_receive(
    port: int, user: str, password: str, clients: list[mqtt.Client]
) -> bytes:
    topic = f"iot/raw/harness/{_probe_name()}"
    received: Queue[bytes] = Queue()
    subscribed = threading.Event()

    subscriber = mqtt_client(user, password)
    clients.append(subscriber)
    subscriber.on_message = lambda _c, _u, message: received.put(message.payload)
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    assert connect(subscriber, port) == "Success"
    subscriber.subscribe(topic, qos=1)
    assert subscribed.wait(10)

    publisher = mqtt_client(user, password)
    clients.append(publisher)
    assert connect(publisher, port) == "Success"
    publisher.publish(topic, b'{"value": 1.5}', qos=1).wait_for_publish(10)

    return received.get(timeout=10)


def test_mosquitto_delivers_between_logged_in_clients(
    mosquitto_server: MosquittoServer, mqtt_clients: list[mqtt.Client]
) -> None:
    payload = _publish_and_receive(
        mosquitto_server.port,
        mosquitto_server.user,
        mosquitto_server.password,
        mqtt_clients,
    )

    assert payload == b'{"value": 1.5}'


def test_mosquitto_refuses_a_wrong_password(
    mosquitto_server: MosquittoServer, mqtt_clients: list[mqtt.Client]
) -> None:
    client = mqtt_client(mosquitto_server.user, "not-the-password")
    mqtt_clients.append(client)

    code = connect(client, mosquitto_server.port)

    assert code.is_failure
    assert code == "Not authorized"


def test_container_config_runs_natively_after_path_translation(
    tmp_path: Path, native_servers: ServerPool, mqtt_clients: list[mqtt.Client]
) -> None:
    stack = tmp_path / "stack"
    config_dir = stack / "mosquitto" / "config"
    config_dir.mkdir(parents=True)
    (stack / "docker-compose.yml").write_text(
        "services:\n  mosquitto:\n    image: eclipse-mosquitto:2\n    volumes:\n"
        "      - ./mosquitto/config:/mosquitto/config:ro\n"
        "      - type: bind\n        source: ./mosquitto/log\n"
        "        target: /mosquitto/log\n"
        "      - mosquitto-data:/mosquitto/data\n"
        "volumes:\n  mosquitto-data: {}\n"
    )
    write_mosquitto_password_file(config_dir / "passwd", {"iot": "s3cret"})
    port = free_port()
    (config_dir / "mosquitto.conf").write_text(
        f"listener {port}\nallow_anonymous false\n"
        "password_file /mosquitto/config/passwd\n"
        "persistence true\npersistence_location /mosquitto/data/\n"
    )

    mapping = container_to_host_paths(
        stack / "docker-compose.yml", "mosquitto", volume_root=tmp_path / "volumes"
    )
    native = translate_config(
        config_dir / "mosquitto.conf", tmp_path / "native.conf", mapping
    )
    native_servers.start(start_mosquitto, native)

    assert mapping == {
        "/mosquitto/config": config_dir.resolve(),
        "/mosquitto/log": (stack / "mosquitto" / "log").resolve(),
        "/mosquitto/data": tmp_path / "volumes" / "mosquitto-data",
    }
    assert f"password_file {config_dir.resolve()}/passwd" in native.read_text()
    assert _publish_and_receive(port, "iot", "s3cret", mqtt_clients)


def test_translate_config_replaces_whole_paths_only(tmp_path: Path) -> None:
    source = tmp_path / "in.conf"
    source.write_text("a /data/x\nb /database\nc /data\nd /data/sub/y\n")
    source.chmod(0o600)

    result = translate_config(
        source,
        tmp_path / "out.conf",
        {"/data": "/host/d", "/data/sub/": Path("/host/s")},
    )

    assert result.read_text() == "a /host/d/x\nb /database\nc /host/d\nd /host/s/y\n"
    assert result.stat().st_mode & 0o777 == 0o600


# --- nginx ---------------------------------------------------------------------


class _EchoPath(BaseHTTPRequestHandler):
    """Answers every GET with the path it received."""

    def do_GET(self) -> None:  # noqa: N802 (name fixed by http.server)
        body = f"upstream saw {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def upstream() -> Iterator[int]:
    """A small local HTTP server on a free port; yields the port."""
    server = ThreadingHTTPServer((LOCALHOST, 0), _EchoPath)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    thread.join(5)
    server.server_close()


def _nginx_proxy_config(path: Path, port: int, upstream_port: int) -> Path:
    path.write_text(
        "user nobody;\nevents {}\nhttp {\n"
        f"  server {{\n    listen {port};\n"
        f"    location /api/ {{ proxy_pass http://127.0.0.1:{upstream_port}/; }}\n"
        "    location / { return 404; }\n  }\n}\n"
    )
    return path


def test_nginx_proxies_to_a_local_http_server(
    tmp_path: Path, native_servers: ServerPool, upstream: int
) -> None:
    port = free_port()
    config = _nginx_proxy_config(tmp_path / "nginx.conf", port, upstream)

    server = native_servers.start(start_nginx, config)
    proxied = httpx.get(f"{server.url}/api/ping?x=1")
    other = httpx.get(f"{server.url}/elsewhere")

    assert proxied.status_code == 200
    assert proxied.text == "upstream saw /ping?x=1"
    assert other.status_code == 404


def test_nginx_runs_a_server_snippet_and_checks_configs(
    tmp_path: Path, native_servers: ServerPool, upstream: int
) -> None:
    port = free_port()
    snippet = tmp_path / "default.conf"
    snippet.write_text(
        f"server {{\n  listen {port};\n"
        f"  location / {{ proxy_pass http://127.0.0.1:{upstream}; }}\n}}\n"
    )
    broken = tmp_path / "broken.conf"
    broken.write_text("server {\n  listen 1;\n  location / { proxy_pass; }\n}\n")

    server = native_servers.start(start_nginx, snippet)

    assert httpx.get(f"{server.url}/x").text == "upstream saw /x"
    assert check_nginx_config(snippet, tmp_path / "check-ok").returncode == 0
    assert check_nginx_config(broken, tmp_path / "check-bad").returncode == 1


# --- Node-RED ------------------------------------------------------------------


def test_node_red_loads_a_flows_file(
    tmp_path: Path, native_servers: ServerPool
) -> None:
    flows = [
        {"id": "tab1", "type": "tab", "label": "harness"},
        {
            "id": "inject1",
            "type": "inject",
            "z": "tab1",
            "name": "tick",
            "repeat": "",
            "once": False,
            "topic": "",
            "payload": "",
            "payloadType": "date",
            "wires": [[]],
        },
    ]
    flows_file = tmp_path / "flows.json"
    flows_file.write_text(json.dumps(flows))

    server = native_servers.start(
        start_node_red, tmp_path / "node-red", free_port(), flows_file
    )
    response = httpx.get(f"{server.url}/flows", headers={"Node-RED-API-Version": "v2"})

    assert response.status_code == 200
    loaded = {node["id"]: node for node in response.json()["flows"]}
    assert loaded["inject1"]["type"] == "inject"
    assert loaded["inject1"]["name"] == "tick"
    assert httpx.get(f"{server.url}/flows/state").json() == {"state": "start"}
