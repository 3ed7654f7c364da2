"""A small paho-mqtt wrapper: connect with a bounded wait, publish and confirm."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from iotstack.errors import ConfigError, RuntimeFailure

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
PUBLISH_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Broker:
    """Where the broker listens and who logs in."""

    host: str
    port: int
    user: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, address: str, user: str | None, password: str | None) -> Broker:
        """`HOST:PORT` (port 1883 when left out) plus the login."""
        host, _, port = address.rpartition(":") if ":" in address else (address, "", "")
        if not host or (port and not (port.isdigit() and 1 <= int(port) <= 65535)):
            raise ConfigError(
                f"broker {address!r} is not HOST:PORT", fix="e.g. 127.0.0.1:1883"
            )
        return cls(host, int(port or 1883), user, password)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def connect(broker: Broker, client_id: str, *, will: tuple[str, str] | None = None):
    """A connected client with its network loop running in the background."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    if broker.user:
        client.username_pw_set(broker.user, broker.password)
    if will:
        client.will_set(will[0], will[1], qos=1, retain=True)

    connected = threading.Event()
    result: list[str] = []

    def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        result.append(str(reason_code))
        connected.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except OSError as exc:
        raise RuntimeFailure(f"MQTT broker {broker} unreachable: {exc}") from None
    client.loop_start()

    if not connected.wait(CONNECT_TIMEOUT_S):
        disconnect(client)
        raise RuntimeFailure(f"MQTT broker {broker} did not answer the login")
    if result[0] != "Success":
        disconnect(client)
        raise RuntimeFailure(f"MQTT broker {broker} refused the login: {result[0]}")
    log.debug("connected to %s as %s", broker, client_id)
    return client


def publish(
    client: mqtt.Client, topic: str, payload: str, *, retain: bool = False
) -> None:
    """Publish with QoS 1 and wait until the broker has acknowledged it."""
    info = client.publish(topic, payload, qos=1, retain=retain)
    try:
        info.wait_for_publish(PUBLISH_TIMEOUT_S)
    except (RuntimeError, ValueError) as exc:
        raise RuntimeFailure(f"MQTT publish to {topic} failed: {exc}") from None
    if not info.is_published():
        raise RuntimeFailure(f"MQTT publish to {topic} was not acknowledged")


def disconnect(client: mqtt.Client) -> None:
    """Close the connection and stop the network loop."""
    client.disconnect()
    client.loop_stop()
