"""A private image registry (Debian `docker-registry`) on 127.0.0.1.

It gives the tests of `--pull` a real registry to pull from. The engine reaches
it as `127.0.0.1:<port>`; Docker treats all of 127.0.0.0/8 as an insecure
(plain HTTP) registry without any daemon flag, and the test engine names that
range with `--insecure-registry` as well.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

START_TIMEOUT_S = 20.0


class RegistryStartError(RuntimeError):
    """docker-registry did not answer; the message carries its log."""


@dataclass
class Registry:
    """A running docker-registry started by `start_registry`."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def host(self) -> str:
        """Registry address as it appears in image names, e.g. 127.0.0.1:5123."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        """Stop the registry and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_registry(root: Path) -> Registry:
    """Start docker-registry with its config and storage under `root`."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise RegistryStartError("docker-registry not found (Debian docker-registry)")

    port = free_port()
    config = _write_config(root, port)
    log_file = (root / "registry.log").open("ab")
    process = subprocess.Popen(
        [binary, "serve", str(config)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )

    registry = Registry(port, root, process)
    _wait_ready(registry)
    return registry


def _write_config(root: Path, port: int) -> Path:
    """Filesystem storage, no auth, HTTP on loopback only."""
    storage = root / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        "log": {"level": "info"},
        "storage": {
            "filesystem": {"rootdirectory": str(storage)},
            "delete": {"enabled": True},
        },
        "http": {"addr": f"127.0.0.1:{port}"},
    }
    path = root / "config.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _wait_ready(registry: Registry) -> None:
    """Poll GET /v2/ until the registry answers 200."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if registry.process.poll() is not None:
            raise RegistryStartError(_failure(registry, "exited"))
        try:
            if httpx.get(f"{registry.url}/v2/", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)

    registry.stop()
    raise RegistryStartError(_failure(registry, "did not answer"))


def _failure(registry: Registry, what: str) -> str:
    log = (registry.root / "registry.log").read_text(errors="replace")
    tail = "\n".join(log.splitlines()[-20:])
    return f"docker-registry on {registry.host} {what}:\n{tail}"
