"""The real Docker engine harness: engine, local images, networks and registry."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import paho.mqtt.client as mqtt
import pytest
from docker.models.containers import Container
from docker.models.networks import Network

from harness.engine import Engine
from harness.registry import Registry

pytestmark = pytest.mark.docker

HEALTH_TIMEOUT_S = 90.0
SECOND_NS = 1_000_000_000


@dataclass
class ServiceCase:
    """How to run one local image and what its health endpoint must answer."""

    service: str
    port: str
    health: list[str]
    path: str
    uid: int
    command: list[str] | None = None
    environment: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)


INFLUX_ADMIN = ("admin", "probe-" + uuid.uuid4().hex[:12])

CASES = [
    ServiceCase(
        "victoria-metrics",
        "8428/tcp",
        ["CMD", "wget", "-qO-", "http://127.0.0.1:8428/health"],
        "/health",
        uid=0,
        command=["--httpListenAddr=:8428", "--storageDataPath=/storage"],
    ),
    ServiceCase(
        "influxdb",
        "8086/tcp",
        ["CMD", "curl", "-fsS", "http://127.0.0.1:8086/ping"],
        "/ping",
        uid=0,
        environment={
            "INFLUXDB_DB": "probe",
            "INFLUXDB_HTTP_AUTH_ENABLED": "true",
            "INFLUXDB_ADMIN_USER": INFLUX_ADMIN[0],
            "INFLUXDB_ADMIN_PASSWORD": INFLUX_ADMIN[1],
        },
    ),
    ServiceCase(
        "prometheus",
        "9090/tcp",
        ["CMD", "wget", "-qO-", "http://127.0.0.1:9090/-/healthy"],
        "/-/ready",
        uid=65534,
    ),
    ServiceCase(
        "mosquitto",
        "1883/tcp",
        ["CMD", "mosquitto_sub", "-h", "127.0.0.1", "-E", "-t", "harness/health"],
        "",
        uid=1883,
        files={
            "/mosquitto/config/mosquitto.conf": (
                "listener 1883\nallow_anonymous true\n"
                "persistence true\npersistence_location /mosquitto/data/\n"
            )
        },
    ),
    ServiceCase(
        "nginx",
        "80/tcp",
        ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1/"],
        "/",
        uid=101,
    ),
    ServiceCase(
        "node-red",
        "1880/tcp",
        ["CMD", "node", "/healthcheck.js"],
        "/",
        uid=1000,
    ),
]


@pytest.fixture
def network(docker_engine: Engine) -> Iterator[Network]:
    """A user network of its own for one test, removed afterwards."""
    net = docker_engine.client.networks.create(f"harness-{uuid.uuid4().hex[:8]}")
    yield net
    for container in docker_engine.client.containers.list(
        all=True, filters={"network": net.name}
    ):
        container.remove(force=True, v=True)
    net.remove()


def run_service(
    client: docker.DockerClient,
    image: str,
    network: Network,
    case: ServiceCase,
    tmp_path: Path,
) -> Container:
    """Start a local image with its port published on 127.0.0.1."""
    volumes: dict[str, dict[str, str]] = {}
    for target, text in case.files.items():
        source = tmp_path / Path(target).name
        source.write_text(text)
        volumes[str(source)] = {"bind": target, "mode": "ro"}

    return client.containers.run(
        image,
        command=case.command,
        name=f"{case.service}-{uuid.uuid4().hex[:6]}",
        detach=True,
        network=network.name,
        ports={case.port: ("127.0.0.1", None)},
        environment=case.environment,
        volumes=volumes,
        healthcheck={
            "test": case.health,
            "interval": SECOND_NS,
            "timeout": 5 * SECOND_NS,
            "retries": 3,
            "start_period": 2 * SECOND_NS,
        },
    )


def wait_healthy(container: Container) -> None:
    """Poll the container's health status, bounded in time."""
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    status = "unknown"
    while time.monotonic() < deadline:
        container.reload()
        state: dict[str, Any] = container.attrs["State"]
        status = state.get("Health", {}).get("Status", state["Status"])
        if status == "healthy":
            return
        if state["Status"] == "exited":
            break
        time.sleep(0.5)

    logs = container.logs(tail=30).decode(errors="replace")
    pytest.fail(f"{container.name} is {status}, not healthy; last log lines:\n{logs}")


def published_port(container: Container, port: str) -> int:
    """Host port that the engine picked for `port` on 127.0.0.1."""
    container.reload()
    binding = container.ports[port][0]
    assert binding["HostIp"] == "127.0.0.1"
    return int(binding["HostPort"])


def test_engine_answers_on_its_own_socket(docker_engine: Engine) -> None:
    assert docker_engine.client.ping() is True
    assert docker_engine.env == {"DOCKER_HOST": docker_engine.base_url}
    assert docker_engine.base_url.startswith("unix:///tmp/")

    version = docker_engine.client.version()
    assert version["ApiVersion"] >= "1.41"


@pytest.mark.parametrize("case", CASES, ids=[case.service for case in CASES])
def test_local_image_answers_its_health_endpoint(
    docker_engine: Engine,
    local_images: dict[str, str],
    network: Network,
    case: ServiceCase,
    tmp_path: Path,
) -> None:
    image = local_images[case.service]
    container = run_service(docker_engine.client, image, network, case, tmp_path)

    wait_healthy(container)
    port = published_port(container, case.port)

    if case.service == "mosquitto":
        assert_mqtt_round_trip(port)
    else:
        reply = httpx.get(f"http://127.0.0.1:{port}{case.path}", timeout=5)
        assert reply.status_code in (200, 204), reply.text
    assert main_process_uid(container, case.service) == case.uid


def test_influxdb_image_creates_database_and_admin_on_empty_volume(
    docker_engine: Engine, local_images: dict[str, str], network: Network, tmp_path
) -> None:
    case = next(case for case in CASES if case.service == "influxdb")
    container = run_service(
        docker_engine.client, local_images["influxdb"], network, case, tmp_path
    )
    wait_healthy(container)
    url = f"http://127.0.0.1:{published_port(container, case.port)}/query"

    anonymous = httpx.get(url, params={"q": "SHOW DATABASES"}, timeout=5)
    admin = httpx.get(url, params={"q": "SHOW DATABASES"}, auth=INFLUX_ADMIN, timeout=5)

    assert anonymous.status_code == 401
    assert admin.status_code == 200
    names = [row[0] for row in admin.json()["results"][0]["series"][0]["values"]]
    assert "probe" in names


def test_containers_on_a_user_network_reach_each_other_by_name(
    docker_engine: Engine, local_images: dict[str, str], network: Network
) -> None:
    client = docker_engine.client
    server = client.containers.run(
        local_images["nginx"],
        name=f"web-{uuid.uuid4().hex[:6]}",
        detach=True,
        network=network.name,
    )

    reply = client.containers.run(
        "iotstack-local/base:test",
        [
            "curl",
            "-fsS",
            "--retry",
            "20",
            "--retry-connrefused",
            f"http://{server.name}/",
        ],
        network=network.name,
        remove=True,
    )

    assert b"nginx is running" in reply


def test_local_registry_takes_a_push_and_serves_a_pull(
    docker_engine: Engine, local_images: dict[str, str], local_registry: Registry
) -> None:
    client = docker_engine.client
    source = client.images.get(local_images["mosquitto"])
    repository = f"{local_registry.host}/iotstack-local/mosquitto"
    source.tag(repository, "test")

    pushed = list(client.images.push(repository, "test", stream=True, decode=True))
    errors = [chunk["error"] for chunk in pushed if "error" in chunk]
    assert errors == []
    client.images.remove(f"{repository}:test")

    try:
        pulled = client.images.pull(repository, tag="test")
    finally:
        # The engine's data root is kept between runs: leave no registry tags.
        if client.images.list(name=repository):
            client.images.remove(f"{repository}:test")

    assert pulled.id == source.id
    catalog = httpx.get(f"{local_registry.url}/v2/_catalog", timeout=5).json()
    assert "iotstack-local/mosquitto" in catalog["repositories"]


def assert_mqtt_round_trip(port: int) -> None:
    """Subscribe and publish through the published broker port."""
    received: list[bytes] = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, message: received.append(message.payload)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.subscribe("harness/probe", qos=1)
        time.sleep(0.2)
        client.publish("harness/probe", b"ping", qos=1).wait_for_publish(timeout=5)
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        client.loop_stop()
        client.disconnect()
    assert received == [b"ping"]


def main_process_uid(container: Container, service: str) -> int:
    """Real uid of the service's process; for nginx, of its workers."""
    command = {
        "victoria-metrics": "victoria-metric",
        "influxdb": "influxd",
    }.get(service, service)
    processes = container.top(ps_args="-eo pid,uid,comm")["Processes"]
    uids = [int(uid) for _pid, uid, comm in processes if comm == command]
    assert uids, f"no {command} process in {processes}"
    return max(uids)
