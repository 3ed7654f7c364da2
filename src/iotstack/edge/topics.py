"""The MQTT topic scheme of edge-first stacks.

- `iot/raw/<site>/<device>/<metric>`: raw samples (kept selectively)
- `iot/inference/<site>/<device>/<model>`: edge inference results
- `iot/models/<name>`: the retained announcement of a model's newest version
- `iot/edge/<agent>/status`: the retained state of one edge agent
- `iot/deadletter/<route>`: messages Node-RED refused, with the reason
"""

from __future__ import annotations

import re

from iotstack.errors import ConfigError

ROOT = "iot"
SEGMENT = re.compile(r"^[A-Za-z0-9_]+$")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MODELS_FILTER = f"{ROOT}/models/#"


def check_segment(value: str, what: str) -> str:
    """A topic segment: letters, digits and `_` only (also a safe IoTDB name)."""
    if not SEGMENT.match(value):
        raise ConfigError(
            f"{what} {value!r} cannot be a topic segment",
            fix="use only A-Z a-z 0-9 _",
        )
    return value


def check_version(version: str) -> str:
    """A model version: it names a registry folder, so no slashes or dot-dot."""
    if not VERSION.match(version):
        raise ConfigError(
            f"version {version!r} is not usable",
            fix="use letters, digits, '.', '_' or '-' (e.g. 1.4.0), at most 64",
        )
    return version


def raw_topic(site: str, device: str, metric: str) -> str:
    """Where a device publishes one raw reading."""
    parts = [
        check_segment(site, "site"),
        check_segment(device, "device"),
        check_segment(metric, "metric"),
    ]
    return "/".join([ROOT, "raw", *parts])


def inference_topic(site: str, device: str, model: str) -> str:
    """Where an edge device publishes what its model concluded."""
    parts = [
        check_segment(site, "site"),
        check_segment(device, "device"),
        check_segment(model, "model"),
    ]
    return "/".join([ROOT, "inference", *parts])


def model_topic(name: str) -> str:
    """The retained announcement topic of one model."""
    return f"{ROOT}/models/{check_segment(name, 'model name')}"


def model_name_of(topic: str) -> str | None:
    """The model name of an announcement topic, or None for any other topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[:2] == [ROOT, "models"] and SEGMENT.match(parts[2]):
        return parts[2]
    return None


def status_topic(agent_id: str) -> str:
    """The retained status topic of one edge agent."""
    return f"{ROOT}/edge/{check_segment(agent_id, 'agent id')}/status"


def dead_letter_topic(route: str) -> str:
    """Where Node-RED puts the messages of a route that it could not store."""
    return f"{ROOT}/deadletter/{route}"
