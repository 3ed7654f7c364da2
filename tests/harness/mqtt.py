"""MQTT clients for tests against the real Mosquitto (paho-mqtt 2.x)."""

from __future__ import annotations

import secrets
from queue import Empty, Queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

LOCALHOST = "127.0.0.1"


def mqtt_client(user: str, password: str) -> mqtt.Client:
    """A client with a unique id and the given login."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=secrets.token_hex(6))
    client.username_pw_set(user, password)
    return client


def connect(client: mqtt.Client, port: int) -> object:
    """Connect to the broker on 127.0.0.1 and return its CONNACK reason code."""
    connack: Queue[object] = Queue()
    client.on_connect = lambda _c, _u, _f, code, _p: connack.put(code)
    client.connect(LOCALHOST, port, keepalive=10)
    client.loop_start()
    try:
        return connack.get(timeout=10)
    except Empty:
        raise AssertionError("no CONNACK within 10 s") from None
