"""Nginx: each routed path answers, and the editor's WebSocket upgrade gets 101."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl

import httpx

from iotstack.checks.base import (
    CheckContext,
    CheckFailure,
    Unreachable,
    request,
    short_reason,
)

SERVICE = "Nginx"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
COMMS_PATH = "/nodered/comms"


def routed_paths(context: CheckContext) -> list[tuple[str, set[int]]]:
    """Each path the rendered Nginx routes, with the statuses that prove it works."""
    endpoints = context.endpoints
    plan = endpoints.plan
    paths: list[tuple[str, set[int]]] = [("/healthz", {200})]
    if plan is None:
        return paths
    if plan.has("grafana"):
        paths.append((f"{plan.config.grafana.sub_path}/api/health", {200}))
    if plan.has("nodered"):
        paths.append(("/nodered/", {200}))
    if plan.has("victoriametrics"):
        paths.append(("/metrics/api/v1/query?query=1", {200}))
    if plan.has("influxdb"):
        # Without credentials InfluxDB itself answers 401: the route works.
        paths.append(("/influxdb/query?q=SHOW+DATABASES", {200, 401}))
    return paths


def probe_nginx(context: CheckContext) -> str:
    """GET every routed path; then a WebSocket handshake on the editor's comms."""
    base = context.endpoints.url("nginx")
    paths = routed_paths(context)
    failed = []

    with context.client() as client:
        for path, accepted in paths:
            response = request(client, SERVICE, "GET", base + path)
            if response.status_code not in accepted:
                failed.append(f"{path} → HTTP {response.status_code}")

    has_editor = context.endpoints.plan is not None and context.endpoints.plan.has(
        "nodered"
    )
    if has_editor:
        status = websocket_handshake(base + COMMS_PATH, context.remaining)
        if status != 101:
            failed.append(f"{COMMS_PATH} WebSocket upgrade → HTTP {status}")
    if failed:
        raise CheckFailure(f"{SERVICE} at {base}: " + "; ".join(failed))

    detail = f"{len(paths)} routes answer"
    return detail + (f"; {COMMS_PATH} WebSocket 101" if has_editor else "")


def websocket_handshake(url: str, timeout: float) -> int:
    """Send a WebSocket upgrade request; return the status (101 when accepted)."""
    parsed = httpx.URL(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    key = base64.b64encode(os.urandom(16)).decode()
    request_text = (
        f"GET {parsed.raw_path.decode()} HTTP/1.1\r\n"
        f"Host: {parsed.host}:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    origin = f"{parsed.scheme}://{parsed.host}:{port}"

    try:
        with socket.create_connection(
            (parsed.host, port), timeout=min(10, timeout)
        ) as raw:
            sock = raw
            if parsed.scheme == "https":
                sock = ssl.create_default_context().wrap_socket(
                    raw, server_hostname=parsed.host
                )
            sock.sendall(request_text.encode())
            head = _read_head(sock)
    except OSError as exc:
        raise Unreachable(SERVICE, origin, short_reason(exc)) from None

    status, headers = _parse_head(head)
    expected = base64.b64encode(
        hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()
    ).decode()
    if status == 101 and headers.get("sec-websocket-accept") != expected:
        raise CheckFailure(f"{url}: 101 without a valid Sec-WebSocket-Accept")
    return status


def _read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n", 1)[0]


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise CheckFailure(f"not an HTTP answer: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers
