"""IoTDB: REST API v2 ping, a probe series created, written and read back.

IoTDB reports most errors as HTTP 200 with a non-success `code` in the JSON
body, so every answer's `code` is read, not only the HTTP status.
"""

from __future__ import annotations

import random
import time
from typing import Any

import httpx

from iotstack.checks.base import (
    AuthFailure,
    CheckContext,
    CheckFailure,
    request,
)

SERVICE = "IoTDB"
SUCCESS = 200
# The stack's own database: each extra database costs IoTDB a schema and a data
# region with their own direct-memory buffers, which a small host cannot spare.
PROBE_DATABASE = "root.iot"
PROBE_PARENT = f"{PROBE_DATABASE}.iotstack_check"
_AUTH_CODES = {800, 801}


class IoTDBError(CheckFailure):
    """IoTDB answered a statement with a non-success code."""

    def __init__(self, what: str, code: object, message: object) -> None:
        self.code = code
        super().__init__(f"{SERVICE} {what}: code {code} {message}")


class IoTDBRest:
    """A small client for the REST API v2 that turns error codes into failures."""

    def __init__(self, client: httpx.Client, context: CheckContext) -> None:
        endpoints = context.endpoints
        self.base = endpoints.url("iotdb")
        self.user = endpoints.secret("IOTDB_USER", "root")
        self.client = client
        self.client.auth = httpx.BasicAuth(
            self.user, endpoints.secret("IOTDB_PASSWORD")
        )

    def ping(self) -> None:
        """`GET /ping`: the DataNode's REST service is up."""
        body = self._answer("GET", "/ping", None)
        self._check(body, "ping")

    def non_query(self, sql: str) -> None:
        """Run a statement that returns no rows."""
        body = self._answer("POST", "/rest/v2/nonQuery", {"sql": sql})
        self._check(body, f"refused {sql.split(' WITH')[0]!r}")

    def query(self, sql: str) -> dict[str, Any]:
        """Run a statement that returns rows (column-major, as IoTDB sends them)."""
        body = self._answer("POST", "/rest/v2/query", {"sql": sql})
        if "code" in body:
            self._check(body, f"refused {sql!r}")
        return body

    def insert_tablet(self, tablet: dict[str, Any]) -> None:
        """Write one tablet."""
        body = self._answer("POST", "/rest/v2/insertTablet", tablet)
        self._check(body, f"refused insertTablet into {tablet['device']}")

    def _answer(self, method: str, path: str, body: dict[str, Any] | None):
        response = request(self.client, SERVICE, method, self.base + path, json=body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if response.status_code == 401 or answer.get("code") in _AUTH_CODES:
            raise AuthFailure(SERVICE, self.base, self.user)
        if response.status_code != 200:
            raise CheckFailure(
                f"{SERVICE} {path} answered HTTP {response.status_code} "
                f"{response.text[:200]}"
            )
        return answer

    @staticmethod
    def _check(body: dict[str, Any], what: str) -> None:
        if body.get("code") != SUCCESS:
            raise IoTDBError(what, body.get("code"), body.get("message"))


def probe_iotdb(context: CheckContext) -> str:
    """Ping, create a probe series, insertTablet, query it back, delete it."""
    device = f"{PROBE_PARENT}.p{context.probe_id}"
    value = random.randint(1, 999_999) + 0.75
    stamp_ms = int(time.time() * 1000)

    with context.client() as client:
        iotdb = IoTDBRest(client, context)
        iotdb.ping()
        ensure_database(iotdb, PROBE_DATABASE)
        iotdb.non_query(
            f"CREATE TIMESERIES {device}.value WITH DATATYPE=DOUBLE, ENCODING=GORILLA"
        )
        try:
            iotdb.insert_tablet(
                {
                    "device": device,
                    "timestamps": [stamp_ms],
                    "measurements": ["value"],
                    "data_types": ["DOUBLE"],
                    "values": [[value]],
                    "is_aligned": False,
                }
            )
            rows = iotdb.query(f"SELECT value FROM {device}")
        finally:
            iotdb.non_query(f"DELETE TIMESERIES {device}.**")

    got = (rows.get("timestamps") or [None])[0], _first_value(rows)
    if got != (stamp_ms, value):
        raise CheckFailure(
            f"{device}.value read back as {got}, wrote {(stamp_ms, value)}"
        )
    return "ping, create, insertTablet and query back"


def ensure_database(iotdb: IoTDBRest, database: str) -> None:
    """Create a database unless it exists already."""
    rows = iotdb.query(f"SHOW DATABASES {database}")
    if not (rows.get("values") or [[]])[0]:
        iotdb.non_query(f"CREATE DATABASE {database}")


def _first_value(rows: dict[str, Any]) -> object:
    columns = rows.get("values") or [[]]
    return columns[0][0] if columns and columns[0] else None
