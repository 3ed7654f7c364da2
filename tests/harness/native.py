"""Start the real servers natively on 127.0.0.1 and stop them again.

Each ``start_*`` function takes explicit paths and ports, launches the server's
own binary (Debian packages, npm Node-RED), waits until it answers and returns a
:class:`ServerProcess`. Configs rendered for containers are made runnable here
with :func:`container_to_host_paths` and :func:`translate_config`.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import httpx
import yaml

LOCALHOST = "127.0.0.1"
DEFAULT_READY_TIMEOUT = 30.0


class NativeServerError(RuntimeError):
    """A native server could not be found, started or configured."""


class MissingBinaryError(NativeServerError):
    """A server's executable is not installed on this machine."""


class ServerStartError(NativeServerError):
    """A server exited or never became ready; the message ends with its log."""


@dataclass
class ServerProcess:
    """One running server: its process, log file and where it listens."""

    name: str
    process: subprocess.Popen[bytes]
    log_file: Path
    port: int | None = None
    host: str = LOCALHOST
    run_dir: Path | None = None
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Base HTTP URL of the server (meaningful for HTTP servers)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        """True while the process has not exited."""
        return self.process.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        """Last lines of the server's log, for error messages."""
        if not self.log_file.exists():
            return ""
        text = self.log_file.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_http(
        self,
        path: str = "/",
        timeout: float = DEFAULT_READY_TIMEOUT,
        ok_status: Collection[int] | None = None,
    ) -> httpx.Response:
        """Poll GET ``path`` until it answers with an accepted status."""
        url = self.url + path
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"

        while time.monotonic() < deadline:
            self._raise_if_exited()
            try:
                response = httpx.get(url, timeout=2.0)
            except httpx.HTTPError as exc:
                last_error = f"{type(exc).__name__}: {exc}"
            else:
                accepted = (
                    response.status_code in ok_status
                    if ok_status is not None
                    else response.is_success
                )
                if accepted:
                    return response
                last_error = f"HTTP {response.status_code}"
            time.sleep(0.05)

        self._fail(f"GET {url} not ready after {timeout:.0f} s ({last_error})")

    def wait_tcp(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        """Poll until the server's TCP port accepts a connection."""
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"

        while time.monotonic() < deadline:
            self._raise_if_exited()
            try:
                with socket.create_connection((self.host, self.port), timeout=1.0):
                    return
            except OSError as exc:
                last_error = str(exc)
            time.sleep(0.05)

        self._fail(
            f"{self.host}:{self.port} not accepting after {timeout:.0f} s "
            f"({last_error})"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate the server (kill its process group if it hangs) and reap it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(self.process)
                self.process.wait(timeout=timeout)
        return self.process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _raise_if_exited(self) -> None:
        if self.process.poll() is not None:
            self._fail(f"exited with code {self.process.returncode}", stop=False)

    def _fail(self, reason: str, stop: bool = True) -> NoReturn:
        if stop:
            self.stop()
        raise ServerStartError(
            f"{self.name} {reason}\n--- {self.log_file} ---\n{self.log_tail()}"
        )


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group that was created for this server alone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --- finding binaries and ports ------------------------------------------------


def cache_dir() -> Path:
    """Folder where the install scripts put what Debian does not package."""
    default = Path.home() / ".cache" / "iotstack-test"
    return Path(os.environ.get("IOTSTACK_TEST_CACHE", default))


def find_binary(name: str) -> str:
    """Absolute path of a server executable, or MissingBinaryError."""
    if name == "node-red":
        cached = cache_dir() / "node-red" / "node_modules" / ".bin" / "node-red"
        if cached.exists():
            return str(cached)
        hint = "bash scripts/deps/node-red.sh"
    else:
        hint = "bash scripts/deps/apt.sh"

    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise MissingBinaryError(f"{name} is not installed (run: {hint})")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return sock.getsockname()[1]


# --- launching -----------------------------------------------------------------


def _prepare_run_dir(run_dir: Path | None, name: str) -> Path:
    if run_dir is None:
        return Path(tempfile.mkdtemp(prefix=f"iotstack-{name}-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def launch(
    name: str,
    argv: Sequence[str],
    run_dir: Path,
    port: int | None,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ServerProcess:
    """Start ``argv`` in its own process group with output in ``run_dir``."""
    log_file = run_dir / f"{name}.log"

    with log_file.open("ab") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or run_dir,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )

    return ServerProcess(
        name=name,
        process=process,
        log_file=log_file,
        port=port,
        run_dir=run_dir,
        argv=list(argv),
    )


# --- VictoriaMetrics -----------------------------------------------------------


def start_victoriametrics(
    port: int,
    data_dir: Path,
    extra_args: Iterable[str] = (),
    *,
    run_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> ServerProcess:
    """Single-node VictoriaMetrics on 127.0.0.1:port, ready on /health."""
    run_dir = _prepare_run_dir(run_dir, "victoriametrics")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_binary("victoria-metrics"),
        f"-httpListenAddr={LOCALHOST}:{port}",
        f"-storageDataPath={data_dir}",
        *extra_args,
    ]

    server = launch("victoriametrics", argv, run_dir, port)
    server.wait_http("/health", timeout=timeout)
    return server


# --- InfluxDB 1.x --------------------------------------------------------------


def write_influxdb_config(
    path: Path,
    data_root: Path,
    http_port: int,
    rpc_port: int,
    auth_enabled: bool = True,
) -> Path:
    """Minimal influxdb.conf: own dirs, both listeners on 127.0.0.1, auth on."""
    for sub in ("meta", "data", "wal"):
        (data_root / sub).mkdir(parents=True, exist_ok=True)

    path.write_text(
        f"""reporting-disabled = true
bind-address = "{LOCALHOST}:{rpc_port}"

[meta]
  dir = "{data_root / "meta"}"

[data]
  dir = "{data_root / "data"}"
  wal-dir = "{data_root / "wal"}"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "{LOCALHOST}:{http_port}"
  auth-enabled = {str(auth_enabled).lower()}
  log-enabled = false
"""
    )
    return path


def influxdb_http_port(config_file: Path) -> int:
    """The HTTP port an influxdb.conf binds (8086 when unset)."""
    config = tomllib.loads(config_file.read_text())
    bind = config.get("http", {}).get("bind-address", ":8086")
    return int(bind.rsplit(":", 1)[1])


def start_influxdb(
    config_file: Path,
    *,
    run_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> ServerProcess:
    """``influxd run -config FILE``, ready on /ping at the file's HTTP port."""
    run_dir = _prepare_run_dir(run_dir, "influxdb")
    port = influxdb_http_port(config_file)
    argv = [find_binary("influxd"), "run", "-config", str(config_file)]

    server = launch("influxdb", argv, run_dir, port)
    server.wait_http("/ping", timeout=timeout)
    return server


def _influxql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _influxql_ident(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _influxdb_query(url: str, query: str, auth: tuple[str, str] | None) -> None:
    response = httpx.post(f"{url}/query", data={"q": query}, auth=auth, timeout=10)
    errors = [r["error"] for r in response.json().get("results", []) if "error" in r]
    if response.is_error or errors:
        raise NativeServerError(
            f"InfluxDB refused {query.split(' WITH')[0]!r}: "
            f"HTTP {response.status_code} {errors or response.text}"
        )


def create_influxdb_admin(url: str, user: str, password: str, database: str) -> None:
    """Create the admin user, then the database, as the image's first start does.

    With auth on, only the very first ``CREATE USER ... WITH ALL PRIVILEGES`` is
    accepted without credentials; everything after it needs them.
    """
    create_user = (
        f"CREATE USER {_influxql_ident(user)} WITH PASSWORD "
        f"{_influxql_string(password)} WITH ALL PRIVILEGES"
    )
    _influxdb_query(url, create_user, auth=None)
    _influxdb_query(
        url, f"CREATE DATABASE {_influxql_ident(database)}", (user, password)
    )


# --- Prometheus ----------------------------------------------------------------


def start_prometheus(
    config_file: Path,
    port: int,
    data_dir: Path,
    extra_args: Iterable[str] = (),
    *,
    run_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> ServerProcess:
    """Prometheus on 127.0.0.1:port with its TSDB in data_dir, ready on /-/ready."""
    run_dir = _prepare_run_dir(run_dir, "prometheus")
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_binary("prometheus"),
        f"--config.file={config_file}",
        f"--web.listen-address={LOCALHOST}:{port}",
        f"--storage.tsdb.path={data_dir}",
        *extra_args,
    ]

    server = launch("prometheus", argv, run_dir, port, cwd=config_file.parent)
    server.wait_http("/-/ready", timeout=timeout)
    return server


def check_prometheus_config(config_file: Path) -> subprocess.CompletedProcess[str]:
    """``promtool check config FILE``: exit code 0 when valid, 1 with the reason."""
    return subprocess.run(
        [find_binary("promtool"), "check", "config", str(config_file)],
        capture_output=True,
        text=True,
        check=False,
    )


# --- Mosquitto -----------------------------------------------------------------

_MOSQUITTO_LISTENER = re.compile(r"^(\s*listener\s+)(\d+)(?:\s+(\S+))?\s*$")
_MOSQUITTO_USER = re.compile(r"^\s*user\s+\S+")


def write_mosquitto_password_file(path: Path, users: Mapping[str, str]) -> Path:
    """Password file with hashed entries, made by ``mosquitto_passwd -b``."""
    tool = find_binary("mosquitto_passwd")
    path.unlink(missing_ok=True)
    path.touch(mode=0o600)

    for user, password in users.items():
        subprocess.run(
            [tool, "-b", str(path), user, password], check=True, capture_output=True
        )
    return path


def native_mosquitto_config(config_file: Path, dest: Path, log_file: Path) -> int:
    """Write a copy of a broker config fit to run here; return its first port.

    Every TCP listener binds 127.0.0.1. Run as root, the broker keeps root
    instead of switching to the ``mosquitto`` user, who could not read a
    0600 password file or write a pid file under the test's folders. The
    broker also logs to ``log_file``.
    """
    lines: list[str] = []
    ports: list[int] = []

    for line in config_file.read_text().splitlines():
        listener = _MOSQUITTO_LISTENER.match(line)
        if listener and listener.group(2) != "0":
            ports.append(int(listener.group(2)))
            line = f"{listener.group(1)}{listener.group(2)} {LOCALHOST}"
        elif _MOSQUITTO_USER.match(line) and os.geteuid() == 0:
            continue
        lines.append(line)

    if os.geteuid() == 0:
        lines.append("user root")
    lines.append(f"log_dest file {log_file}")
    dest.write_text("\n".join(lines) + "\n")

    if not ports:
        raise NativeServerError(f"{config_file} has no TCP listener")
    return ports[0]


def start_mosquitto(
    config_file: Path,
    *,
    run_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> ServerProcess:
    """Mosquitto from a copy of ``config_file`` (see native_mosquitto_config).

    Relative paths in the config resolve against the config's folder. Ready
    when the first listener accepts TCP connections.
    """
    run_dir = _prepare_run_dir(run_dir, "mosquitto")
    native_config = run_dir / "mosquitto.native.conf"
    port = native_mosquitto_config(
        config_file, native_config, run_dir / "mosquitto.log"
    )
    argv = [find_binary("mosquitto"), "-c", str(native_config)]

    server = launch("mosquitto", argv, run_dir, port, cwd=config_file.parent)
    server.wait_tcp(timeout=timeout)
    return server


# --- nginx ---------------------------------------------------------------------

_NGINX_MAIN_ONLY = re.compile(r"^\s*(daemon|pid|user)\s+[^;]*;\s*$", re.MULTILINE)
_NGINX_INCLUDE = re.compile(r"(^\s*include\s+)([^/;\s][^;\s]*)(\s*;)", re.MULTILINE)
_NGINX_LISTEN = re.compile(
    r"((?:^|[{;])\s*listen\s+)(\[::\]:|\*:|0\.0\.0\.0:)?(\d+)(?=[\s;])", re.M
)
_NGINX_LISTEN_PORT = re.compile(r"(?:^|[{;])\s*listen\s+(?:\S*:)?(\d+)(?=[\s;])", re.M)
_NGINX_HTTP = re.compile(r"^\s*http\s*\{", re.MULTILINE)
_NGINX_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _absolute_include(match: re.Match[str], base: Path) -> str:
    target = base / match.group(2)
    if not any(target.parent.glob(target.name)):
        target = Path("/etc/nginx") / match.group(2)
    return f"{match.group(1)}{target}{match.group(3)}"


def _localhost_listen(match: re.Match[str]) -> str:
    host = "[::1]:" if match.group(2) == "[::]:" else f"{LOCALHOST}:"
    return f"{match.group(1)}{host}{match.group(3)}"


def native_nginx_config(config_file: Path, run_dir: Path) -> Path:
    """Write a copy of an nginx config that runs here as root, in the foreground.

    A file without an ``http`` block (a server snippet such as conf.d/*.conf)
    is wrapped in a main config. Listeners given only a port bind 127.0.0.1,
    relative includes become absolute, and temp files and the access log go
    to ``run_dir`` so the Debian service's /var/lib/nginx stays untouched.
    """
    text = config_file.read_text()
    if not _NGINX_HTTP.search(text):
        text = f"events {{}}\nhttp {{\n    include /etc/nginx/mime.types;\n{text}\n}}\n"

    text = _NGINX_MAIN_ONLY.sub("", text)
    text = _NGINX_INCLUDE.sub(lambda m: _absolute_include(m, config_file.parent), text)
    text = _NGINX_LISTEN.sub(_localhost_listen, text)

    http_extra = [
        f"    {kind}_temp_path {run_dir / 'tmp' / kind};"
        for kind in _NGINX_TEMP_PATHS
        if f"{kind}_temp_path" not in text
    ]
    if "access_log" not in text:
        http_extra.append(f"    access_log {run_dir / 'access.log'};")
    text = _NGINX_HTTP.sub(lambda m: m.group(0) + "\n" + "\n".join(http_extra), text, 1)

    (run_dir / "tmp").mkdir(parents=True, exist_ok=True)
    native_config = run_dir / "nginx.native.conf"
    native_config.write_text(text)
    return native_config


def _nginx_argv(native_config: Path, run_dir: Path) -> list[str]:
    main = f"daemon off; pid {run_dir / 'nginx.pid'};"
    if os.geteuid() == 0:
        main += " user root;"
    return [
        find_binary("nginx"),
        "-c",
        str(native_config),
        "-p",
        f"{run_dir}/",
        "-e",
        str(run_dir / "nginx.log"),
        "-g",
        main,
    ]


def check_nginx_config(
    config_file: Path, run_dir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``nginx -t`` on the native copy of ``config_file``."""
    run_dir = _prepare_run_dir(run_dir, "nginx")
    argv = _nginx_argv(native_nginx_config(config_file, run_dir), run_dir)
    return subprocess.run([*argv, "-t"], capture_output=True, text=True, check=False)


def start_nginx(
    config_file: Path,
    port: int | None = None,
    *,
    run_dir: Path | None = None,
    timeout: float = DEFAULT_READY_TIMEOUT,
) -> ServerProcess:
    """nginx in the foreground from a native copy of ``config_file``.

    Ready when ``port`` (default: the first ``listen`` port in the file)
    accepts TCP connections; nginx's error log is the server's log file.
    """
    run_dir = _prepare_run_dir(run_dir, "nginx")
    native_config = native_nginx_config(config_file, run_dir)
    if port is None:
        listen = _NGINX_LISTEN_PORT.search(native_config.read_text())
        if listen is None:
            raise NativeServerError(f"{config_file} has no listen directive")
        port = int(listen.group(1))

    server = launch("nginx", _nginx_argv(native_config, run_dir), run_dir, port)
    server.wait_tcp(timeout=timeout)
    return server


# --- Node-RED ------------------------------------------------------------------


def start_node_red(
    user_dir: Path,
    port: int,
    flows_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    admin_root: str = "",
    ready_path: str | None = None,
    run_dir: Path | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Node-RED with ``user_dir`` (its settings.js if present) and ``flows_file``.

    ``env`` is added to the process environment (the flows and settings.js of
    a rendered stack read their credentials from it). ``admin_root`` is
    settings.js's ``httpAdminRoot``. Ready when GET ``ready_path`` answers, or
    else when the editor answers ``<admin_root>/`` and the flows report state
    "start" (or the admin API asks for a login, when settings.js sets
    adminAuth).
    """
    run_dir = _prepare_run_dir(run_dir, "node-red")
    user_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_binary("node-red"),
        "-u",
        str(user_dir),
        "-p",
        str(port),
        "-D",
        f"uiHost={LOCALHOST}",
        str(flows_file),
    ]

    server = launch("node-red", argv, run_dir, port, cwd=user_dir, env=env)
    if ready_path is not None:
        server.wait_http(ready_path, timeout=timeout)
        return server
    admin_root = admin_root.rstrip("/")
    server.wait_http(f"{admin_root}/", timeout=timeout)
    _wait_flows_started(server, f"{admin_root}/flows/state", timeout)
    return server


def _wait_flows_started(server: ServerProcess, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = server.wait_http(path, timeout, ok_status={200, 401})
        if response.status_code == 401 or response.json().get("state") == "start":
            return
        time.sleep(0.1)
    server._fail(f"flows not started after {timeout:.0f} s")


# --- container configs run natively --------------------------------------------


def _parse_volume(entry: str | Mapping[str, object]) -> tuple[str, str, str]:
    """(type, source, target) of one compose volume entry, short or long form."""
    if isinstance(entry, Mapping):
        source = str(entry.get("source", ""))
        return str(entry.get("type", "volume")), source, str(entry["target"])

    parts = entry.split(":")
    if len(parts) == 1:
        return "volume", "", parts[0]
    source, target = parts[0], parts[1]
    is_path = source.startswith(("/", ".", "~"))
    return ("bind" if is_path else "volume"), source, target


def container_to_host_paths(
    compose_file: Path,
    service: str,
    volume_root: Path | None = None,
) -> dict[str, Path]:
    """Container path → host path for one service's mounts in a compose file.

    Bind-mount sources are resolved against the compose file's folder. Named
    volumes map to ``volume_root/<name>`` when a root is given (the folder is
    created) and are left out otherwise. Sources are taken literally: no
    ``${VAR}`` interpolation.
    """
    compose = yaml.safe_load(compose_file.read_text())
    services = compose.get("services") or {}
    if service not in services:
        raise NativeServerError(f"{compose_file} has no service {service!r}")

    mapping: dict[str, Path] = {}
    for entry in services[service].get("volumes") or []:
        kind, source, target = _parse_volume(entry)
        if kind == "bind":
            host = Path(source).expanduser()
            mapping[target] = (compose_file.parent / host).resolve()
        elif kind == "volume" and source and volume_root is not None:
            mapping[target] = volume_root / source
            mapping[target].mkdir(parents=True, exist_ok=True)
    return mapping


def translate_config(src: Path, dst: Path, mapping: Mapping[str, Path | str]) -> Path:
    """Copy ``src`` to ``dst`` with every container path replaced by its host path.

    A container path matches only as a whole path or a path prefix (``/data``
    matches ``/data/x`` but not ``/database``); longer paths win. The file
    mode is kept, so a 0600 password file stays 0600.
    """
    text = src.read_text()
    targets = {k.rstrip("/") or "/": str(v) for k, v in mapping.items()}
    if targets:
        ordered = sorted(targets, key=len, reverse=True)
        pattern = re.compile(
            r"(?<![\w.-])(" + "|".join(map(re.escape, ordered)) + r")(?![\w.-])"
        )
        text = pattern.sub(lambda m: targets[m.group(1)], text)

    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    shutil.copymode(src, dst)
    return dst
