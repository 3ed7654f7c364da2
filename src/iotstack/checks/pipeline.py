"""Pipeline: a probe published on MQTT arrives through Node-RED in every store.

Node-RED turns `iot/raw/<site>/<device>/<metric>` into the Influx line
`iot,site=..,device=.. <metric>=v ts` (VictoriaMetrics names it
`iot_<metric>{site,device}`) and into `root.iot.<site>.<device>.<metric>` in
IoTDB; inference results on `iot/inference/<site>/<device>/<model>` become
`iot_inference_score{site,device,model}` and `<model>_score` in IoTDB.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from dataclasses import dataclass

import httpx
import paho.mqtt.client as mqtt

from iotstack.checks.base import (
    AuthFailure,
    CheckContext,
    CheckFailure,
    Unreachable,
    poll,
    request,
    short_reason,
)
from iotstack.checks.influxdb import influxdb_login
from iotstack.checks.iotdb import IoTDBRest
from iotstack.variants import Route

SITE = "iotstack_check"
METRIC = "probe"
MODEL = "probe_model"
MQTT_SERVICE = "Mosquitto"


@dataclass(frozen=True)
class Probe:
    """One published message and where each store should show it."""

    route: Route
    topic: str
    payload: str
    value: float
    stamp_ms: int
    vm_name: str
    influx_measurement: str
    influx_field: str
    iotdb_measurement: str
    tags: dict[str, str]


def probe_pipeline(context: CheckContext) -> str:
    """Publish one probe per route and find it in each of the route's stores."""
    endpoints = context.endpoints
    device = f"p{context.probe_id}"
    probes = [_probe(route, device) for route in endpoints.plan.variant.routes]
    kept = [p for p in probes if _kept(context, p)]

    with context.client() as client:
        _node_red_answers(client, endpoints.url("nodered"))
        _publish(context, kept)
        found = []
        try:
            for probe in kept:
                for sink in _sinks(context, probe.route):
                    _find(context, client, probe, sink)
                    found.append(f"{probe.route.name}→{sink}")
        finally:
            _delete_iotdb_probe(context, client, device)

    skipped = [p.route.name for p in probes if p not in kept]
    detail = "found in " + ", ".join(found)
    return detail + (
        f" (dropped by raw_rules: {', '.join(skipped)})" if skipped else ""
    )


def _probe(route: Route, device: str) -> Probe:
    value = random.randint(1, 999_999) + 0.125
    stamp_ms = int(time.time() * 1000)
    prefix = route.topic.removesuffix("/#")
    tags = {"site": SITE, "device": device}

    if "inference" in route.name:
        return Probe(
            route=route,
            topic=f"{prefix}/{SITE}/{device}/{MODEL}",
            payload=json.dumps({"score": value, "ts": stamp_ms}),
            value=value,
            stamp_ms=stamp_ms,
            vm_name="iot_inference_score",
            influx_measurement="iot_inference",
            influx_field="score",
            iotdb_measurement=f"{MODEL}_score",
            tags=tags | {"model": MODEL},
        )
    return Probe(
        route=route,
        topic=f"{prefix}/{SITE}/{device}/{METRIC}",
        payload=json.dumps({"value": value, "ts": stamp_ms}),
        value=value,
        stamp_ms=stamp_ms,
        vm_name=f"iot_{METRIC}",
        influx_measurement="iot",
        influx_field=METRIC,
        iotdb_measurement=METRIC,
        tags=tags,
    )


def _kept(context: CheckContext, probe: Probe) -> bool:
    """Whether the stack's raw_rules let this probe's topic through."""
    if not probe.route.selective:
        return True
    keep = True
    for rule in context.endpoints.config.edge.raw_rules:
        if _topic_matches(rule.topic, probe.topic):
            keep = rule.keep
    return keep


def _topic_matches(pattern: str, topic: str) -> bool:
    return mqtt.topic_matches_sub(pattern, topic)


def _sinks(context: CheckContext, route: Route) -> list[str]:
    endpoints = context.endpoints
    available = {
        "metrics": endpoints.has("victoriametrics") or endpoints.has("influxdb"),
        "iotdb": endpoints.has("iotdb"),
    }
    return [sink for sink in route.sinks if available.get(sink)]


def _node_red_answers(client: httpx.Client, base: str) -> None:
    """Node-RED's own metrics endpoint answers, so a stopped Node-RED is named."""
    response = request(client, "Node-RED", "GET", f"{base}/metrics")
    if response.status_code != 200:
        raise CheckFailure(f"Node-RED {base}/metrics: HTTP {response.status_code}")


def _publish(context: CheckContext, probes: list[Probe]) -> None:
    """Publish each probe with QoS 1, logged in as the stack's device user."""
    url = httpx.URL(context.endpoints.url("mqtt").replace("mqtt://", "http://", 1))
    host, port = url.host, url.port or 1883
    where = f"mqtt://{host}:{port}"
    user, password = context.endpoints.mqtt_device_login()
    connected = threading.Event()
    outcome: dict[str, object] = {}

    def on_connect(_client, _userdata, _flags, reason_code, _properties) -> None:
        outcome["reason"] = reason_code
        connected.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"iotstack-check-{context.probe_id}"
    )
    client.username_pw_set(user, password)
    client.on_connect = on_connect
    try:
        client.connect(host, port, keepalive=10)
    except OSError as exc:
        raise Unreachable(MQTT_SERVICE, where, short_reason(exc)) from None

    client.loop_start()
    try:
        if not connected.wait(min(10.0, context.remaining)):
            raise Unreachable(MQTT_SERVICE, where, "no CONNACK")
        reason = outcome["reason"]
        if reason.is_failure:
            if reason.value in (0x86, 0x87, 4, 5):
                raise AuthFailure(MQTT_SERVICE, where, user)
            raise CheckFailure(f"{MQTT_SERVICE} at {where} refused: {reason}")
        for probe in probes:
            info = client.publish(probe.topic, probe.payload, qos=1)
            info.wait_for_publish(timeout=min(10.0, context.remaining))
            if not info.is_published():
                raise CheckFailure(f"{MQTT_SERVICE} did not acknowledge {probe.topic}")
    finally:
        client.disconnect()
        client.loop_stop()


def _find(context: CheckContext, client: httpx.Client, probe: Probe, sink: str):
    """Poll one store until it shows the probe with its value and tags."""
    endpoints = context.endpoints
    if sink == "iotdb":
        reader, store = _iotdb_reader(context, client, probe), "IoTDB"
    elif endpoints.has("victoriametrics"):
        reader, store = (
            _vm_reader(endpoints.url("victoriametrics"), client, probe),
            ("VictoriaMetrics"),
        )
    else:
        reader, store = _influx_reader(context, client, probe), "InfluxDB"

    got = poll(context, reader, f"{probe.topic} in {store}")
    if got != (probe.stamp_ms, probe.value):
        raise CheckFailure(
            f"{probe.topic} arrived in {store} as {got}, "
            f"published {(probe.stamp_ms, probe.value)}"
        )


def _vm_reader(base: str, client: httpx.Client, probe: Probe):
    labels = ",".join(f'{key}="{value}"' for key, value in probe.tags.items())
    match = f'{{__name__="{probe.vm_name}",{labels}}}'

    def read() -> tuple[int, float] | None:
        response = request(
            client,
            "VictoriaMetrics",
            "GET",
            f"{base}/api/v1/export",
            params={"match[]": match},
        )
        lines = response.text.splitlines() if response.status_code == 200 else []
        if not lines:
            return None
        row = json.loads(lines[-1])
        return row["timestamps"][-1], row["values"][-1]

    return read


def _influx_reader(context: CheckContext, client: httpx.Client, probe: Probe):
    base = context.endpoints.url("influxdb")
    login = influxdb_login(context)
    where = " AND ".join(f"\"{key}\"='{value}'" for key, value in probe.tags.items())
    query = (
        f'SELECT "{probe.influx_field}" FROM "{probe.influx_measurement}" WHERE {where}'
    )

    def read() -> tuple[int, float] | None:
        response = request(
            client,
            "InfluxDB",
            "POST",
            f"{base}/query",
            params={
                "db": context.endpoints.secret("INFLUXDB_DB", "iot"),
                "epoch": "ms",
            },
            data={"q": query},
            auth=login,
        )
        if response.status_code in (401, 403):
            raise AuthFailure("InfluxDB", base, login[0])
        result = response.json().get("results", [{}])[0] if response.is_success else {}
        series = result.get("series") or []
        return tuple(series[0]["values"][0]) if series else None

    return read


def _iotdb_reader(context: CheckContext, client: httpx.Client, probe: Probe):
    iotdb = IoTDBRest(client, context)
    device = f"root.iot.{probe.tags['site']}.{probe.tags['device']}"
    query = f"SELECT {probe.iotdb_measurement} FROM {device}"

    def read() -> tuple[int, float] | None:
        rows = iotdb.query(query)
        stamps, columns = rows.get("timestamps") or [], rows.get("values") or []
        if not stamps or not columns or not columns[0]:
            return None
        return stamps[0], columns[0][0]

    return read


def _delete_iotdb_probe(context: CheckContext, client: httpx.Client, device: str):
    """Remove the probe's series from IoTDB so checks leave no schema behind."""
    if not context.endpoints.has("iotdb"):
        return
    with contextlib.suppress(CheckFailure):
        IoTDBRest(client, context).non_query(
            f"DELETE TIMESERIES root.iot.{SITE}.{device}.**"
        )
