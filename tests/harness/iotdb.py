"""A real Apache IoTDB 1C1D (one ConfigNode, one DataNode) started from the jars.

`scripts/deps/iotdb.sh` puts the ConfigNode and DataNode jars with all their
runtime dependencies into one `lib` folder of the test cache. This module starts
both nodes as child processes on 127.0.0.1 with small explicit heaps, the way
the upstream `start-confignode.sh` / `start-datanode.sh` would, but with every
home, conf and log folder passed explicitly so nothing lands in the cache.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

IOTDB_VERSION = os.environ.get("IOTDB_VERSION", "2.0.1-beta")
CONFIGNODE_MAIN = "org.apache.iotdb.confignode.service.ConfigNode"
DATANODE_MAIN = "org.apache.iotdb.db.service.DataNode"
PROPERTIES_FILE = "iotdb-system.properties"
DEFAULT_USER = "root"
DEFAULT_PASSWORD = "root"
REST_AUTH_CACHE_SECONDS = 2

# Java 17 needs these for IoTDB's reflective access; the upstream env scripts
# add the same list for every JDK newer than 8.
_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in (
        "java.util.concurrent",
        "java.lang",
        "java.util",
        "java.nio",
        "java.io",
        "java.net",
    )
]

_LOGBACK = """<configuration>
  <appender name="out" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%d %-5level [%thread] %logger{36} - %msg%n</pattern></encoder>
  </appender>
  <root level="INFO"><appender-ref ref="out"/></root>
</configuration>
"""


class IoTDBStartError(RuntimeError):
    """The ConfigNode or DataNode did not come up; the message holds its log tail."""


@dataclass(frozen=True)
class IoTDBPorts:
    """Every TCP port one ConfigNode plus one DataNode listen on."""

    cn_internal: int
    cn_consensus: int
    dn_rpc: int
    dn_internal: int
    dn_mpp_data_exchange: int
    dn_schema_region_consensus: int
    dn_data_region_consensus: int
    rest: int


@dataclass(frozen=True)
class JvmMemory:
    """Explicit heap and direct-memory limits for one node, in megabytes."""

    heap_mb: int
    direct_mb: int

    def options(self) -> list[str]:
        """JVM flags that pin the heap and the direct-memory ceiling."""
        return [
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            f"-XX:MaxDirectMemorySize={self.direct_mb}m",
        ]


CONFIGNODE_MEMORY = JvmMemory(heap_mb=128, direct_mb=64)
# The DataNode refuses a new data region once its direct buffers (a WAL buffer
# per region among them) would pass ~80 % of MaxDirectMemorySize: 128 MiB left
# room for only a few databases. The ceiling is not reserved up front, so a
# session that creates few regions stays as small as before.
DATANODE_MEMORY = JvmMemory(heap_mb=256, direct_mb=384)


def iotdb_lib_dir(version: str = IOTDB_VERSION) -> Path:
    """Folder that `scripts/deps/iotdb.sh` fills with the server jars."""
    cache = os.environ.get("IOTSTACK_TEST_CACHE", "~/.cache/iotstack-test")
    return Path(cache).expanduser() / f"iotdb-{version}" / "lib"


def iotdb_jars_present(version: str = IOTDB_VERSION) -> bool:
    """True when both main classes' jars are in the cache."""
    lib = iotdb_lib_dir(version)
    server = lib / f"iotdb-server-{version}.jar"
    confignode = lib / f"iotdb-confignode-{version}.jar"
    return server.is_file() and confignode.is_file()


def free_ports(count: int) -> list[int]:
    """Ask the kernel for `count` distinct free ports on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def allocate_ports() -> IoTDBPorts:
    """Free ports for every listener of a 1C1D cluster."""
    return IoTDBPorts(*free_ports(8))


def write_minimal_properties(
    conf_dir: Path, ports: IoTDBPorts, extra: dict[str, str] | None = None
) -> Path:
    """Write the smallest `iotdb-system.properties` a 1C1D on 127.0.0.1 needs."""
    seed = f"127.0.0.1:{ports.cn_internal}"
    values = {
        "cn_internal_address": "127.0.0.1",
        "cn_internal_port": ports.cn_internal,
        "cn_consensus_port": ports.cn_consensus,
        "cn_seed_config_node": seed,
        "dn_rpc_address": "127.0.0.1",
        "dn_rpc_port": ports.dn_rpc,
        "dn_internal_address": "127.0.0.1",
        "dn_internal_port": ports.dn_internal,
        "dn_mpp_data_exchange_port": ports.dn_mpp_data_exchange,
        "dn_schema_region_consensus_port": ports.dn_schema_region_consensus,
        "dn_data_region_consensus_port": ports.dn_data_region_consensus,
        "dn_seed_config_node": seed,
        "enable_rest_service": "true",
        "rest_service_port": ports.rest,
        # The REST service caches each Authorization header for this long
        # (upstream default 8 h), so an old password keeps working until then.
        "cache_expire_in_seconds": REST_AUTH_CACHE_SECONDS,
        **(extra or {}),
    }

    conf_dir.mkdir(parents=True, exist_ok=True)
    path = conf_dir / PROPERTIES_FILE
    path.write_text("".join(f"{key}={value}\n" for key, value in values.items()))
    return path


def read_properties(path: Path) -> dict[str, str]:
    """Parse the `key=value` lines of a Java properties file (no continuations)."""
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")) or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


@dataclass
class IoTDBCluster:
    """One ConfigNode and one DataNode started from `conf_dir`, data in `work_dir`.

    The ports are read from the properties file, so the file is the only
    place they are chosen. Use as a context manager or call `start`/`stop`.
    """

    conf_dir: Path
    work_dir: Path
    username: str = DEFAULT_USER
    password: str = DEFAULT_PASSWORD
    version: str = IOTDB_VERSION
    confignode_memory: JvmMemory = CONFIGNODE_MEMORY
    datanode_memory: JvmMemory = DATANODE_MEMORY
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def properties(self) -> dict[str, str]:
        """The settings the nodes read at start-up."""
        return read_properties(self.conf_dir / PROPERTIES_FILE)

    @property
    def rest_port(self) -> int:
        """Port of the REST service (`rest_service_port`, upstream default 18080)."""
        return int(self.properties.get("rest_service_port", "18080"))

    @property
    def rpc_port(self) -> int:
        """Port of the DataNode's client RPC (`dn_rpc_port`, default 6667)."""
        return int(self.properties.get("dn_rpc_port", "6667"))

    @property
    def confignode_port(self) -> int:
        """Port of the ConfigNode's internal service (`cn_internal_port`)."""
        return int(self.properties.get("cn_internal_port", "10710"))

    @property
    def rest_url(self) -> str:
        """Base URL of the REST service, without a trailing slash."""
        return f"http://127.0.0.1:{self.rest_port}"

    def log_path(self, node: str) -> Path:
        """Where the stdout and stderr of `confignode` or `datanode` go."""
        return self.work_dir / "logs" / f"{node}.log"

    def start(self, timeout: float = 120.0) -> IoTDBCluster:
        """Start both nodes and return once the DataNode serves SQL over REST."""
        deadline = time.monotonic() + timeout
        self._prepare_work_dir()

        self._launch("confignode", CONFIGNODE_MAIN, self.confignode_memory)
        self._wait_for_port("confignode", self.confignode_port, deadline)

        self._launch("datanode", DATANODE_MAIN, self.datanode_memory)
        self._wait_for_rest(deadline)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the DataNode, then the ConfigNode, and reap both processes."""
        for node in ("datanode", "confignode"):
            process = self._processes.pop(node, None)
            if process is None or process.poll() is not None:
                continue

            process.terminate()
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> IoTDBCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def sql(self, statement: str, *, password: str | None = None) -> httpx.Response:
        """Run a statement that returns rows through `POST /rest/v2/query`."""
        return self._post("/rest/v2/query", {"sql": statement}, password)

    def non_query(
        self, statement: str, *, password: str | None = None
    ) -> httpx.Response:
        """Run a statement without rows through `POST /rest/v2/nonQuery`."""
        return self._post("/rest/v2/nonQuery", {"sql": statement}, password)

    def insert_tablet(
        self, tablet: dict[str, object], *, password: str | None = None
    ) -> httpx.Response:
        """Write one tablet through `POST /rest/v2/insertTablet`."""
        return self._post("/rest/v2/insertTablet", tablet, password)

    def _post(
        self, path: str, body: dict[str, object], password: str | None
    ) -> httpx.Response:
        auth = (self.username, self.password if password is None else password)
        return httpx.post(self.rest_url + path, json=body, auth=auth, timeout=30.0)

    def _prepare_work_dir(self) -> None:
        (self.work_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self.work_dir / "logback.xml").write_text(_LOGBACK)

    def _launch(self, node: str, main_class: str, memory: JvmMemory) -> None:
        """Start one node with the system properties its start script would set."""
        home = self.work_dir / node
        home.mkdir(parents=True, exist_ok=True)
        conf = str(self.conf_dir.resolve())
        locations = {
            "IOTDB_HOME": home,
            "IOTDB_DATA_HOME": home,
            "IOTDB_CONF": conf,
            "IOTDB_LOG_DIR": home / "logs",
            "CONFIGNODE_HOME": home,
            "CONFIGNODE_DATA_HOME": home,
            "CONFIGNODE_CONF": conf,
            "CONFIGNODE_LOGS": home / "logs",
            "TSFILE_HOME": home,
            "TSFILE_CONF": conf,
            "OFF_HEAP_MEMORY": f"{memory.direct_mb}M",
            "logback.configurationFile": self.work_dir / "logback.xml",
            "iotdb-foreground": "yes",
        }
        command = [
            _java(),
            *_OPENS,
            *memory.options(),
            *(f"-D{key}={value}" for key, value in locations.items()),
            "-cp",
            str(iotdb_lib_dir(self.version) / "*"),
            main_class,
            "-s",
        ]

        with self.log_path(node).open("ab") as log:
            self._processes[node] = subprocess.Popen(
                command,
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _wait_for_port(self, node: str, port: int, deadline: float) -> None:
        """Poll until `port` accepts TCP connections or the node exits."""
        while True:
            self._check_alive(node)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    return
            except OSError:
                self._check_deadline(node, f"port {port} to open", deadline)
                time.sleep(0.3)

    def _wait_for_rest(self, deadline: float) -> None:
        """Poll `GET /ping`, then `SHOW DATANODES` until the DataNode is Running."""
        while True:
            self._check_alive("confignode")
            self._check_alive("datanode")
            if self._datanode_running():
                return
            self._check_deadline("datanode", "a Running DataNode over REST", deadline)
            time.sleep(0.5)

    def _datanode_running(self) -> bool:
        try:
            ping = httpx.get(self.rest_url + "/ping", timeout=2.0)
            if ping.status_code != 200:
                return False
            rows = self.sql("SHOW DATANODES").json()
        except (httpx.HTTPError, ValueError):
            return False
        columns = rows.get("column_names") or []
        statuses = dict(zip(columns, rows.get("values") or [], strict=False))
        return "Running" in statuses.get("Status", [])

    def _check_alive(self, node: str) -> None:
        process = self._processes[node]
        if process.poll() is not None:
            self.stop()
            raise IoTDBStartError(
                f"IoTDB {node} exited with code {process.returncode}:\n"
                + self._log_tail(node)
            )

    def _check_deadline(self, node: str, waiting_for: str, deadline: float) -> None:
        if time.monotonic() > deadline:
            self.stop()
            raise IoTDBStartError(
                f"timed out waiting for {waiting_for}:\n" + self._log_tail(node)
            )

    def _log_tail(self, node: str, lines: int = 40) -> str:
        text = self.log_path(node).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


def _java() -> str:
    """The `java` of JAVA_HOME if set, else the one on PATH."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return str(Path(java_home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise IoTDBStartError("no java found on PATH or in JAVA_HOME")
    return found
