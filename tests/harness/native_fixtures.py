"""Pytest fixtures that start the real native servers on 127.0.0.1.

``native_servers`` (per test) and ``session_native_servers`` (per session) start
any server from given config files and stop it afterwards. The ``*_server``
fixtures are ready-made session instances with a small config of their own. A
test is skipped only when a server's binary is not installed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from harness.native import (
    MissingBinaryError,
    ServerProcess,
    create_influxdb_admin,
    find_binary,
    free_port,
    start_influxdb,
    start_mosquitto,
    start_prometheus,
    start_victoriametrics,
    write_influxdb_config,
    write_mosquitto_password_file,
)


def require_binary(name: str) -> str:
    """Path of ``name``, or skip the test saying how to install it."""
    try:
        return find_binary(name)
    except MissingBinaryError as exc:
        pytest.skip(str(exc))


class ServerPool:
    """Starts native servers, each in its own run folder, and stops them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: list[ServerProcess] = []

    def start(
        self, starter: Callable[..., ServerProcess], *args: Any, **kwargs: Any
    ) -> ServerProcess:
        """Run a ``start_*`` function in a fresh run folder; skip if not installed."""
        name = starter.__name__.removeprefix("start_")
        kwargs.setdefault("run_dir", self.root / f"{name}-{len(self.servers)}")

        try:
            server = starter(*args, **kwargs)
        except MissingBinaryError as exc:
            pytest.skip(str(exc))

        self.servers.append(server)
        return server

    def stop_all(self) -> None:
        """Stop every server started here, newest first."""
        while self.servers:
            self.servers.pop().stop()


@pytest.fixture
def native_servers(tmp_path: Path) -> Iterator[ServerPool]:
    """Servers that live for one test."""
    pool = ServerPool(tmp_path / "native")
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def session_native_servers(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServerPool]:
    """Servers that live for the whole test session."""
    pool = ServerPool(tmp_path_factory.mktemp("native"))
    yield pool
    pool.stop_all()


@pytest.fixture(scope="session")
def victoriametrics_server(
    session_native_servers: ServerPool, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """VictoriaMetrics with an empty store."""
    data_dir = tmp_path_factory.mktemp("victoriametrics-data")
    return session_native_servers.start(start_victoriametrics, free_port(), data_dir)


@dataclass
class InfluxDBServer:
    """A running InfluxDB with auth on and the admin user it was given."""

    server: ServerProcess
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="session")
def influxdb_server(
    session_native_servers: ServerPool, tmp_path_factory: pytest.TempPathFactory
) -> InfluxDBServer:
    """InfluxDB 1.x with auth on, an admin user and one database."""
    require_binary("influxd")
    root = tmp_path_factory.mktemp("influxdb")
    config = write_influxdb_config(
        root / "influxdb.conf",
        root / "var",
        http_port=free_port(),
        rpc_port=free_port(),
    )

    server = session_native_servers.start(start_influxdb, config)
    admin = InfluxDBServer(server, "admin", secrets.token_urlsafe(16), "iot")
    create_influxdb_admin(server.url, admin.user, admin.password, admin.database)
    return admin


@pytest.fixture(scope="session")
def prometheus_server(
    session_native_servers: ServerPool, tmp_path_factory: pytest.TempPathFactory
) -> ServerProcess:
    """Prometheus scraping only itself."""
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = root / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: prometheus\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    return session_native_servers.start(start_prometheus, config, port, root / "data")


@dataclass
class MosquittoServer:
    """A running Mosquitto that needs a login, and that login."""

    server: ServerProcess
    user: str
    password: str

    @property
    def port(self) -> int:
        assert self.server.port is not None
        return self.server.port


@pytest.fixture(scope="session")
def mosquitto_server(
    session_native_servers: ServerPool, tmp_path_factory: pytest.TempPathFactory
) -> MosquittoServer:
    """Mosquitto with one listener and a password file (no anonymous clients)."""
    require_binary("mosquitto")
    root = tmp_path_factory.mktemp("mosquitto")
    user, password = "iot", secrets.token_urlsafe(16)
    passwords = write_mosquitto_password_file(root / "passwd", {user: password})
    config = root / "mosquitto.conf"
    config.write_text(
        f"listener {free_port()}\nallow_anonymous false\npassword_file {passwords}\n"
    )

    server = session_native_servers.start(start_mosquitto, config)
    return MosquittoServer(server, user, password)


@pytest.fixture
def mqtt_clients() -> Iterator[list[Any]]:
    """MQTT clients a test appends to; each is disconnected afterwards."""
    clients: list[Any] = []
    yield clients
    for client in clients:
        client.disconnect()
        client.loop_stop()
