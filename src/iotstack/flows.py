"""Build the Node-RED flows (`flows.json`) from the variant's routes.

Each route is: MQTT in → decode (validate, convert) → batch per sink → one HTTP
write per batch, with malformed messages, and the messages of a refused
batch, sent to a dead-letter topic with their reason. The JavaScript of each
function node is data under `templates/services/nodered/`.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from iotstack.data import data_dir
from iotstack.plan import StackPlan
from iotstack.variants import Route

TAB_ID = "iotstack.ingest"
BROKER_ID = "iotstack.broker"
DEAD_LETTER_PREFIX = "iot/deadletter"
# Each route sends a store at most one write per BATCH_MAX_WAIT_MS, holding up
# to BATCH_MAX_MESSAGES: a burst costs the store a few large requests, and a
# message that finds the store idle is sent at once, so few messages wait.
BATCH_MAX_MESSAGES = 500
BATCH_MAX_WAIT_MS = 20


def _node_id(*parts: str) -> str:
    """Stable ids, so re-rendering the same stack gives the same flows."""
    return hashlib.sha1("/".join(parts).encode()).hexdigest()[:16]


def _function_code(name: str) -> str:
    path = data_dir("templates") / "services" / "nodered" / "functions" / f"{name}.js"
    return path.read_text(encoding="utf-8")


def _function_node(
    node_id: str,
    name: str,
    code: str,
    *,
    at: tuple[int, int],
    wires: list[list[str]],
    finalize: str = "",
) -> dict[str, Any]:
    """A function node on the ingest tab with one output per wire list."""
    x, y = at
    return {
        "id": node_id,
        "type": "function",
        "z": TAB_ID,
        "name": name,
        "func": code,
        "outputs": len(wires),
        "timeout": 0,
        "noerr": 0,
        "initialize": "",
        "finalize": finalize,
        "libs": [],
        "x": x,
        "y": y,
        "wires": wires,
    }


def build_flows(plan: StackPlan) -> list[dict[str, Any]]:
    """The complete flow list for the stack."""
    nodes: list[dict[str, Any]] = [
        {"id": TAB_ID, "type": "tab", "label": "iotstack ingest", "disabled": False},
        _broker(plan),
    ]
    for row, route in enumerate(plan.variant.routes):
        nodes += _route_nodes(plan, route, row)
    nodes += _metrics_endpoint(row=len(plan.variant.routes))
    return nodes


def build_credentials(plan: StackPlan) -> dict[str, Any]:
    """`flows_cred.json`: environment references only, never a secret itself."""
    return {
        BROKER_ID: {
            "user": "${MQTT_NODERED_USER}",
            "password": "${MQTT_NODERED_PASSWORD}",
        }
    }


def _broker(plan: StackPlan) -> dict[str, Any]:
    port = plan.services["mosquitto"].port
    return {
        "id": BROKER_ID,
        "type": "mqtt-broker",
        "name": "stack broker",
        "broker": plan.internal_host("mosquitto"),
        "port": str(port),
        "clientid": f"{plan.config.project}-nodered",
        "autoConnect": True,
        "usetls": False,
        "protocolVersion": "4",
        "keepalive": "60",
        "cleansession": True,
        "autoUnsubscribe": True,
        "birthTopic": "",
        "closeTopic": "",
        "willTopic": "",
    }


def _sink_settings(plan: StackPlan) -> dict[str, Any]:
    """Where each sink writes, as the decode functions see it."""
    settings: dict[str, Any] = {}
    if plan.metrics_store == "influxdb":
        settings["metrics"] = {
            "url": plan.internal_url("influxdb", "/write?db=iot&precision=ms"),
            "auth": "influxdb",
        }
    else:
        settings["metrics"] = {
            "url": plan.internal_url("victoriametrics", "/write?precision=ms"),
            "auth": None,
        }
    if plan.has("iotdb"):
        settings["iotdb"] = {
            "url": plan.internal_url("iotdb", "/rest/v2/insertRecords"),
            "auth": "iotdb",
        }
    return settings


def _batch_settings(plan: StackPlan, route: Route) -> dict[str, Any]:
    sinks = _sink_settings(plan)
    return {
        "route": route.name,
        "targets": {sink: sinks[sink] for sink in route.sinks if sink in sinks},
        "batch": {"maxMessages": BATCH_MAX_MESSAGES, "maxWaitMs": BATCH_MAX_WAIT_MS},
    }


def _route_settings(plan: StackPlan, route: Route) -> dict[str, Any]:
    sinks = _sink_settings(plan)
    return {
        "route": route.name,
        "sinks": [sink for sink in route.sinks if sink in sinks],
        "rawRules": [rule.model_dump() for rule in plan.config.edge.raw_rules]
        if route.selective
        else [],
        "anomalyThreshold": plan.config.edge.anomaly_threshold,
        "iotdbRoot": "root.iot",
        "deadLetterTopic": f"{DEAD_LETTER_PREFIX}/{route.name}",
    }


def _route_nodes(plan: StackPlan, route: Route, row: int) -> list[dict[str, Any]]:
    """MQTT in, decode, batch, HTTP writer, result counter, dead letter."""
    y = 80 + row * 200
    ids = {
        part: _node_id(route.name, part)
        for part in ("in", "decode", "batch", "write", "result", "dead")
    }
    settings = _route_settings(plan, route)
    decode = (
        f"const ROUTE = {json.dumps(settings)};\n"
        + _function_code("common")
        + _function_code(
            "decode_" + ("inference" if "inference" in route.name else "raw")
        )
    )
    return [
        {
            "id": ids["in"],
            "type": "mqtt in",
            "z": TAB_ID,
            "name": f"{route.name}: {route.topic}",
            "topic": route.topic,
            "qos": "1",
            "datatype": "utf8",
            "broker": BROKER_ID,
            "nl": False,
            "rap": True,
            "rh": 0,
            "inputs": 0,
            "x": 150,
            "y": y,
            "wires": [[ids["decode"]]],
        },
        _function_node(
            ids["decode"],
            f"decode {route.name}",
            decode,
            at=(360, y),
            wires=[[ids["batch"]], [ids["dead"]]],
        ),
        _function_node(
            ids["batch"],
            f"batch {route.name} writes",
            f"const ROUTE = {json.dumps(_batch_settings(plan, route))};\n"
            + _function_code("batch_writes"),
            at=(560, y),
            wires=[[ids["write"]]],
            finalize=_function_code("batch_writes_finalize"),
        ),
        {
            "id": ids["write"],
            "type": "http request",
            "z": TAB_ID,
            "name": f"write {route.name}",
            "method": "use",
            "ret": "txt",
            "paytoqs": "ignore",
            "url": "",
            "tls": "",
            "persist": True,
            "proxy": "",
            "insecureHTTPParser": False,
            "authType": "",
            "senderr": False,
            "headers": [],
            "x": 760,
            "y": y,
            "wires": [[ids["result"]]],
        },
        _function_node(
            ids["result"],
            f"count {route.name} writes",
            f"const ROUTE = {json.dumps({'route': route.name})};\n"
            + _function_code("count_result"),
            at=(960, y),
            wires=[[ids["dead"]]],
        ),
        {
            "id": ids["dead"],
            "type": "mqtt out",
            "z": TAB_ID,
            "name": f"dead letter {route.name}",
            "topic": "",
            "qos": "1",
            "retain": "false",
            "broker": BROKER_ID,
            "x": 620,
            "y": y + 80,
            "wires": [],
        },
    ]


def _metrics_endpoint(row: int) -> list[dict[str, Any]]:
    """`GET /metrics` in Prometheus text format, for Prometheus to scrape."""
    y = 80 + row * 200
    ids = {part: _node_id("metrics", part) for part in ("in", "format", "out")}
    return [
        {
            "id": ids["in"],
            "type": "http in",
            "z": TAB_ID,
            "name": "GET /metrics",
            "url": "/metrics",
            "method": "get",
            "upload": False,
            "swaggerDoc": "",
            "x": 140,
            "y": y,
            "wires": [[ids["format"]]],
        },
        _function_node(
            ids["format"],
            "format counters",
            _function_code("metrics"),
            at=(360, y),
            wires=[[ids["out"]]],
        ),
        {
            "id": ids["out"],
            "type": "http response",
            "z": TAB_ID,
            "name": "",
            "statusCode": "",
            "headers": {"content-type": "text/plain; version=0.0.4"},
            "x": 560,
            "y": y,
            "wires": [],
        },
    ]
