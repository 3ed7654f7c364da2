"""Replay a CSV of sensor readings as device traffic on `iot/raw/...`.

Columns: `site,device,metric,value` and optionally `ts` (epoch milliseconds or
an ISO 8601 time; the time of sending when empty) and `unit`. The whole file
is checked before the first message is sent.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from iotstack.edge import topics
from iotstack.edge.mqtt import Broker, connect, disconnect, publish
from iotstack.errors import ConfigError

COLUMNS = ("site", "device", "metric", "value")
MAX_RATE = 1000.0


@dataclass(frozen=True)
class Reading:
    """One CSV row as the message it becomes."""

    topic: str
    value: float
    ts: int | None
    unit: str | None

    def payload(self) -> str:
        """The raw-sample JSON document (see schemas/raw-sample.schema.json)."""
        body: dict[str, object] = {"value": self.value}
        if self.ts is not None:
            body["ts"] = self.ts
        if self.unit:
            body["unit"] = self.unit
        return json.dumps(body)


def read_csv(path: Path) -> list[Reading]:
    """Every row of the file as a reading; a bad row is a ConfigError naming it."""
    if not path.is_file():
        what = "is a folder, not a CSV file" if path.is_dir() else "CSV file not found"
        raise ConfigError(what, path=str(path), fix="name the CSV file itself")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            return _readings(path, csv.DictReader(handle))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(
            f"is not a UTF-8 CSV file ({exc})",
            path=str(path),
            fix="save it as UTF-8 text with a ts,site,device,metric,value header",
        ) from None


def _readings(path: Path, rows: csv.DictReader) -> list[Reading]:
    """The rows after a header that has every column a reading needs."""
    missing = [column for column in COLUMNS if column not in (rows.fieldnames or [])]
    if missing:
        raise ConfigError(
            f"missing column(s) {', '.join(missing)}",
            path=str(path),
            fix="the header needs ts,site,device,metric,value (ts optional)",
        )
    return [_reading(path, rows.line_num, row) for row in rows]


def _reading(path: Path, line: int, row: dict[str, str]) -> Reading:
    try:
        topic = topics.raw_topic(row["site"], row["device"], row["metric"])
        value = float(row["value"])
        if not math.isfinite(value):
            raise ValueError("value must be a finite number")
        return Reading(topic, value, _timestamp(row.get("ts")), row.get("unit"))
    except (ConfigError, ValueError) as exc:
        raise ConfigError(str(exc), path=f"{path}:{line}") from None


def _timestamp(text: str | None) -> int | None:
    """Epoch milliseconds from a number or an ISO 8601 time; None when empty."""
    if not text:
        return None
    if text.isdigit():
        return int(text)
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def replay(
    readings: list[Reading], broker: Broker, rate: float, limit: int | None = None
) -> int:
    """Publish the readings at `rate` messages per second; returns how many."""
    if not 0 < rate <= MAX_RATE:
        raise ConfigError(
            f"rate {rate} is out of range", fix=f"use 0 < N <= {MAX_RATE}"
        )
    if limit is not None and limit < 0:
        raise ConfigError(f"limit {limit} is negative", fix="use 0 or more rows")
    selected = readings[:limit] if limit is not None else readings

    client = connect(broker, f"iotstack-replay-{os.getpid()}")
    try:
        start = time.monotonic()
        for sent, reading in enumerate(selected):
            pause = start + sent / rate - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            publish(client, reading.topic, reading.payload())
    finally:
        disconnect(client)
    return len(selected)
