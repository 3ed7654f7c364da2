"""Grafana data sources, built as data and dumped with a YAML library."""

from __future__ import annotations

from typing import Any

from iotstack.plan import StackPlan

IOTDB_PLUGIN = "apache-iotdb-datasource"


def datasources(plan: StackPlan) -> list[dict[str, Any]]:
    """One complete entry per data source: uid, orgId and an http:// URL each."""
    sources: list[dict[str, Any]] = []
    default = plan.variant.grafana_default_datasource

    if plan.has("victoriametrics"):
        sources.append(
            {
                "name": "VictoriaMetrics",
                "uid": "iotstack-victoriametrics",
                "type": "prometheus",
                "access": "proxy",
                "orgId": 1,
                "url": plan.internal_url("victoriametrics"),
                "isDefault": default == "metrics",
                "editable": False,
                "jsonData": {"httpMethod": "POST", "timeInterval": "15s"},
            }
        )
    if plan.has("influxdb"):
        sources.append(
            {
                "name": "InfluxDB",
                "uid": "iotstack-influxdb",
                "type": "influxdb",
                "access": "proxy",
                "orgId": 1,
                "url": plan.internal_url("influxdb"),
                "isDefault": default == "metrics",
                "editable": False,
                "jsonData": {
                    "dbName": "iot",
                    "httpMode": "POST",
                    "version": "InfluxQL",
                },
                "user": "$__env{INFLUXDB_ADMIN_USER}",
                "secureJsonData": {"password": "$__env{INFLUXDB_ADMIN_PASSWORD}"},
            }
        )
    if plan.has("iotdb"):
        sources.append(
            {
                "name": "IoTDB",
                "uid": "iotstack-iotdb",
                "type": IOTDB_PLUGIN,
                "access": "proxy",
                "orgId": 1,
                "url": plan.internal_url("iotdb"),
                "isDefault": default == "iotdb",
                "editable": False,
                "jsonData": {
                    "url": plan.internal_url("iotdb"),
                    "username": "$__env{IOTDB_USER}",
                },
                "secureJsonData": {"password": "$__env{IOTDB_PASSWORD}"},
            }
        )
    if not any(source["isDefault"] for source in sources) and sources:
        sources[0]["isDefault"] = True
    return sources


def plugins(plan: StackPlan) -> list[str]:
    """Plugins Grafana must install for this stack's data sources."""
    return [IOTDB_PLUGIN] if plan.has("iotdb") else []


def starter_dashboard(plan: StackPlan) -> dict[str, Any]:
    """A first dashboard: sensor values and the ingest pipeline's health."""
    panels: list[dict[str, Any]] = []
    if plan.has("victoriametrics"):
        source = {"type": "prometheus", "uid": "iotstack-victoriametrics"}
        panels.append(
            _panel(
                "Sensor values",
                source,
                [{"refId": "A", "expr": '{__name__=~"iot_.+"}', "legendFormat": ""}],
                y=0,
            )
        )
        panels.append(
            _panel(
                "Ingest rate (messages/s)",
                source,
                [
                    {
                        "refId": "A",
                        "expr": "sum by (route, result) "
                        "(rate(iotstack_messages_total[5m]))",
                        "legendFormat": "{{route}} {{result}}",
                    }
                ],
                y=8,
            )
        )
    if plan.has("influxdb"):
        source = {"type": "influxdb", "uid": "iotstack-influxdb"}
        query = (
            'SELECT mean(*) FROM "iot" WHERE $timeFilter '
            "GROUP BY time($__interval), site, device fill(none)"
        )
        panels.append(
            _panel(
                "Sensor values",
                source,
                [
                    {
                        "refId": "A",
                        "query": query,
                        "rawQuery": True,
                        "resultFormat": "time_series",
                    }
                ],
                y=0,
            )
        )
    return {
        "uid": "iotstack-overview",
        "title": "iotstack overview",
        "tags": ["iotstack"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def _panel(
    title: str, source: dict[str, str], targets: list[dict[str, Any]], y: int
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": source,
        "gridPos": {"x": 0, "y": y, "w": 24, "h": 8},
        "targets": [target | {"datasource": source} for target in targets],
    }
