"""InfluxDB 1.x: an authenticated write of a probe point and a query that finds it."""

from __future__ import annotations

import random
import time

import httpx

from iotstack.checks.base import (
    AuthFailure,
    CheckContext,
    CheckFailure,
    poll,
    request,
)

SERVICE = "InfluxDB"
MEASUREMENT = "iotstack_probe"


def probe_influxdb(context: CheckContext) -> str:
    """Write one point with the admin login from `.env`, query it, drop it."""
    base = context.endpoints.url("influxdb")
    login = influxdb_login(context)
    database = context.endpoints.secret("INFLUXDB_DB", "iot")
    value = random.randint(1, 999_999) + 0.25
    stamp_ms = int(time.time() * 1000)
    probe = context.probe_id

    with context.client() as client:
        client.auth = httpx.BasicAuth(*login)
        response = request(
            client,
            SERVICE,
            "POST",
            f"{base}/write",
            params={"db": database, "precision": "ms"},
            content=f"{MEASUREMENT},probe={probe} value={value} {stamp_ms}\n",
        )
        _raise_for_status(response, base, login[0], f"write to database {database!r}")

        query = f'SELECT "value" FROM "{MEASUREMENT}" WHERE "probe"=\'{probe}\''
        row = poll(
            context,
            lambda: _first_row(client, base, database, query, login[0]),
            f"probe {probe} in InfluxDB database {database!r}",
        )
        _query(client, base, database, f'DROP SERIES FROM "{MEASUREMENT}"', login[0])

    if row != [stamp_ms, value]:
        raise CheckFailure(f"probe read back as {row}, wrote {[stamp_ms, value]}")
    return f"authenticated write and query in database {database!r}"


def influxdb_login(context: CheckContext) -> tuple[str, str]:
    """The InfluxDB admin login from `.env`."""
    env = context.endpoints
    return env.secret("INFLUXDB_ADMIN_USER", "admin"), env.secret(
        "INFLUXDB_ADMIN_PASSWORD"
    )


def _first_row(
    client: httpx.Client, base: str, database: str, query: str, user: str
) -> list[object] | None:
    result = _query(client, base, database, query, user)
    series = result.get("series") or []
    return series[0]["values"][0] if series else None


def _query(
    client: httpx.Client, base: str, database: str, query: str, user: str
) -> dict[str, object]:
    response = request(
        client,
        SERVICE,
        "POST",
        f"{base}/query",
        params={"db": database, "epoch": "ms"},
        data={"q": query},
    )
    _raise_for_status(response, base, user, "query")
    result = response.json()["results"][0]
    if "error" in result:
        raise CheckFailure(f"{SERVICE} query failed: {result['error']}")
    return result


def _raise_for_status(response: httpx.Response, base: str, user: str, what: str):
    if response.status_code in (401, 403):
        raise AuthFailure(SERVICE, base, user)
    if response.is_error:
        raise CheckFailure(
            f"{SERVICE} {what} failed: HTTP {response.status_code} "
            f"{response.text[:200]}"
        )
