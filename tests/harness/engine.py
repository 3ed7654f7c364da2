"""A private Docker engine (Debian `dockerd`) for the tests that need a real one.

The engine gets its own socket, exec root and pid file under a temporary
folder, so it never touches a system Docker. Its data root lives in the test
cache by default, so images built once survive between test sessions.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import docker
import docker.errors

log = logging.getLogger(__name__)

# Subnets for the engine's user networks, away from a system Docker's defaults
# (172.17.0.0/16 onwards and 192.168.0.0/16), so both can run side by side.
ADDRESS_POOL = "base=10.213.0.0/16,size=24"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class EngineStartError(RuntimeError):
    """dockerd did not come up; the message carries the end of its log."""


def test_cache() -> Path:
    """Folder that keeps downloads and built images between test runs."""
    default = Path.home() / ".cache" / "iotstack-test"
    return Path(os.environ.get("IOTSTACK_TEST_CACHE", default))


@dataclass
class Engine:
    """A running dockerd started by `start_engine`."""

    run_dir: Path
    data_root: Path
    process: subprocess.Popen[bytes]
    client: docker.DockerClient
    iptables: bool
    notes: list[str] = field(default_factory=list)
    _lock: IO[str] | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (docker CLI, compose) to use this engine."""
        return {"DOCKER_HOST": self.base_url}

    @property
    def log_file(self) -> Path:
        return self.run_dir / "dockerd.log"

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_file, lines)

    def stop(self) -> None:
        """Remove our containers, stop dockerd and wait for it to exit."""
        try:
            remove_containers(self.client)
        except docker.errors.DockerException as exc:
            log.warning("could not remove containers before stop: %s", exc)
        self.client.close()

        _terminate(self.process)
        _release(self._lock)
        _unmount_below(self.run_dir)
        shutil.rmtree(self.run_dir, ignore_errors=True)


def start_engine(data_root: Path | None = None) -> Engine:
    """Start a private dockerd and wait until it answers a ping."""
    run_dir = Path(tempfile.mkdtemp(prefix="iotstack-engine-", dir="/tmp"))
    data_root, lock = _claim_data_root(data_root, run_dir)

    process = _spawn(run_dir, data_root, iptables=True)
    try:
        client = _wait_ready(run_dir, process)
        engine = Engine(run_dir, data_root, process, client, iptables=True)
    except EngineStartError as first:
        reason = _fatal_line(str(first))
        if "iptables" not in reason:
            _release(lock)
            raise
        engine = _start_without_iptables(run_dir, data_root, reason)

    engine._lock = lock
    _clean_leftovers(engine.client)
    return engine


def remove_containers(client: docker.DockerClient) -> None:
    """Force-remove every container of this engine (it is ours alone)."""
    for container in client.containers.list(all=True):
        container.remove(force=True, v=True)


def _start_without_iptables(run_dir: Path, data_root: Path, reason: str) -> Engine:
    """Second attempt with --iptables=false; records why in `notes`."""
    log.warning("dockerd failed with iptables, retrying without: %s", reason)

    process = _spawn(run_dir, data_root, iptables=False)
    client = _wait_ready(run_dir, process)
    note = (
        "iptables set-up failed, engine runs with --iptables=false "
        f"(no outbound NAT from containers; ports still published): {reason}"
    )
    return Engine(run_dir, data_root, process, client, iptables=False, notes=[note])


def _fatal_line(log_tail: str) -> str:
    """The line of dockerd's log that says why it stopped (else the last one)."""
    lines = log_tail.splitlines()
    fatal = [
        line
        for line in lines
        if "level=fatal" in line or "failed to start daemon" in line
    ]
    return (fatal or lines or [""])[-1]


def _claim_data_root(
    data_root: Path | None, run_dir: Path
) -> tuple[Path, IO[str] | None]:
    """Lock the shared data root, or fall back to a private one if it is busy."""
    if data_root is not None:
        data_root.mkdir(parents=True, exist_ok=True)
        return data_root, None

    cache = test_cache()
    cache.mkdir(parents=True, exist_ok=True)
    lock = (cache / "docker-root.lock").open("w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        private = run_dir / "data"
        log.warning("%s is in use by another engine; using %s", cache, private)
        return private, None
    return cache / "docker-root", lock


def _spawn(run_dir: Path, data_root: Path, iptables: bool) -> subprocess.Popen[bytes]:
    """Launch dockerd with every path of its own."""
    socket = run_dir / "docker.sock"
    socket.unlink(missing_ok=True)
    command = [
        "dockerd",
        f"--data-root={data_root}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={run_dir / 'docker.pid'}",
        f"-H=unix://{socket}",
        # No default bridge: no clash with a system docker0. Containers join
        # user networks (with DNS between them) or the host network.
        "--bridge=none",
        f"--default-address-pool={ADDRESS_POOL}",
        # 127.0.0.0/8 is insecure by default already; said here for the reader.
        "--insecure-registry=127.0.0.0/8",
        f"--iptables={'true' if iptables else 'false'}",
        "--shutdown-timeout=5",
    ]
    log_file = (run_dir / "dockerd.log").open("ab")
    return subprocess.Popen(
        command,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def _wait_ready(run_dir: Path, process: subprocess.Popen[bytes]) -> docker.DockerClient:
    """Poll the socket until the engine answers, or report why it died."""
    base_url = f"unix://{run_dir / 'docker.sock'}"
    deadline = time.monotonic() + START_TIMEOUT_S
    delay = 0.1
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EngineStartError(
                f"dockerd exited with {process.returncode}:\n"
                + _tail(run_dir / "dockerd.log", 30)
            )

        if (run_dir / "docker.sock").exists():
            client = _connect(base_url)
            if client is not None:
                return client

        time.sleep(delay)
        delay = min(delay * 2, 1.0)

    _terminate(process)
    raise EngineStartError(
        f"dockerd did not answer within {START_TIMEOUT_S:.0f} s:\n"
        + _tail(run_dir / "dockerd.log", 30)
    )


def _connect(base_url: str) -> docker.DockerClient | None:
    """A client that got an answer to ping, or None while the engine is not up."""
    try:
        # The constructor already asks the engine for its API version.
        client = docker.DockerClient(base_url=base_url, timeout=120)
    except docker.errors.DockerException:
        return None
    try:
        client.ping()
    except docker.errors.DockerException:
        client.close()
        return None
    return client


def _clean_leftovers(client: docker.DockerClient) -> None:
    """Drop containers, networks, volumes and local-registry tags left behind."""
    remove_containers(client)
    client.networks.prune()
    client.volumes.prune()

    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith("127.0.0.1:"):
                client.images.remove(tag)


def _terminate(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait, then SIGKILL if dockerd does not exit in time."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        log.warning("dockerd ignored SIGTERM for %.0f s, killing it", STOP_TIMEOUT_S)
        # The whole group: dockerd's own containerd child goes with it.
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _unmount_below(folder: Path) -> None:
    """Unmount what dockerd left mounted under its exec root (netns/default)."""
    prefix = f"{folder}/"
    with open("/proc/self/mountinfo") as mountinfo:
        points = [line.split()[4] for line in mountinfo]
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.run(["umount", "--lazy", point], check=False, capture_output=True)


def _release(lock: IO[str] | None) -> None:
    if lock is not None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])
