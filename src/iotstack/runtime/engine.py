"""Connect to the Docker engine, or say in one line how to make it reachable."""

from __future__ import annotations

import logging
import os

import docker
import docker.errors

from iotstack.errors import RuntimeFailure

log = logging.getLogger(__name__)

DEFAULT_HOST = "unix:///var/run/docker.sock"
# Pulls of large images and slow health checks need more than the SDK's 60 s.
API_TIMEOUT_S = 300


def engine_address() -> str:
    """Where the SDK looks for the engine: DOCKER_HOST or the default socket."""
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def connect() -> docker.DockerClient:
    """A client that has answered a ping; an unreachable engine is one clear line."""
    address = engine_address()
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, ValueError) as exc:
        # The SDK raises a bare ValueError for some malformed DOCKER_HOST values.
        log.debug("engine at %s did not answer: %s", address, exc)
        raise RuntimeFailure(
            f"cannot reach the Docker engine at {address}: {_reason(exc)} — "
            "start it (e.g. `sudo systemctl start docker`), or point DOCKER_HOST "
            "at a running engine and check you may use its socket"
        ) from None
    return client


def is_local(address: str | None = None) -> bool:
    """Whether published ports land on this machine (a local socket)."""
    return (address or engine_address()).startswith("unix://")


def _reason(exc: Exception) -> str:
    """The innermost readable cause of a connection failure."""
    text = str(exc)
    for marker in (
        "No such file or directory",
        "Permission denied",
        "Connection refused",
    ):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.splitlines()[0][:160] if text else type(exc).__name__
