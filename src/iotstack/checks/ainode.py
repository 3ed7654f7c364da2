"""AINode: registered with IoTDB and running, its models listed, a forecast made.

Everything goes through the IoTDB REST API: `SHOW AINODES`, `SHOW MODELS` and
`CALL INFERENCE`. The forecast is written back into IoTDB as its own series,
as the stack keeps AI outputs apart from the measured data.
"""

from __future__ import annotations

import time
from typing import Any

from iotstack.checks.base import CheckContext, CheckFailure
from iotstack.checks.iotdb import (
    PROBE_DATABASE,
    PROBE_PARENT,
    IoTDBRest,
    ensure_database,
)

FORECASTER = "_NaiveForecaster"
HISTORY = 8
HORIZON = 3


def probe_ainode(context: CheckContext) -> str:
    """`SHOW AINODES` has a Running node; models listed; a forecast written back."""
    with context.client() as client:
        iotdb = IoTDBRest(client, context)
        nodes = _columns(iotdb.query("SHOW AINODES"))
        if not nodes.get("NodeID"):
            raise CheckFailure(f"no AINode registered with IoTDB at {iotdb.base}")

        statuses = nodes.get("Status", [])
        if any(status != "Running" for status in statuses):
            raise CheckFailure(f"AINode registered but not running: {statuses}")

        models = _columns(iotdb.query("SHOW MODELS")).get("ModelId", [])
        detail = f"{len(statuses)} AINode running, models: {', '.join(models) or '-'}"
        if FORECASTER not in models:
            return detail + f" (no {FORECASTER}, forecast skipped)"

        written = _forecast_written_back(iotdb, context.probe_id)
    return detail + f"; {written} forecast points written back"


def _forecast_written_back(iotdb: IoTDBRest, probe_id: str) -> int:
    """Forecast a short probe series and store the result as `forecast_naive`."""
    device = f"{PROBE_PARENT}.a{probe_id}"
    now_ms = int(time.time() * 1000)
    stamps = [now_ms - (HISTORY - i) * 1000 for i in range(HISTORY)]
    ensure_database(iotdb, PROBE_DATABASE)

    try:
        iotdb.insert_tablet(
            _tablet(device, "value", stamps, [float(i) for i in stamps])
        )
        rows = iotdb.query(
            f'CALL INFERENCE({FORECASTER}, "select value from {device}", '
            f"predict_length={HORIZON})"
        )
        values = (rows.get("values") or [[]])[0]
        if len(values) != HORIZON:
            raise CheckFailure(f"forecast gave {len(values)} points, asked {HORIZON}")

        future = [now_ms + (i + 1) * 1000 for i in range(HORIZON)]
        iotdb.insert_tablet(_tablet(device, "forecast_naive", future, values))
        stored = iotdb.query(f"SELECT forecast_naive FROM {device}")
        return len((stored.get("values") or [[]])[0])
    finally:
        iotdb.non_query(f"DELETE TIMESERIES {device}.**")


def _tablet(
    device: str, measurement: str, stamps: list[int], values: list[Any]
) -> dict[str, Any]:
    return {
        "device": device,
        "timestamps": stamps,
        "measurements": [measurement],
        "data_types": ["DOUBLE"],
        "values": [values],
        "is_aligned": False,
    }


def _columns(rows: dict[str, Any]) -> dict[str, list[Any]]:
    """A `SHOW ...` answer as column name → values."""
    names = rows.get("column_names") or rows.get("expressions") or []
    return dict(zip(names, rows.get("values") or [], strict=False))
