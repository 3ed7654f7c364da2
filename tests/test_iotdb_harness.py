"""A real IoTDB 1C1D answers REST v2 round trips and honours a changed password."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from harness.iotdb import REST_AUTH_CACHE_SECONDS, IoTDBCluster

pytestmark = pytest.mark.integration

SUCCESS = 200
WRONG_LOGIN_PASSWORD = 801


def _database_name() -> str:
    return f"root.harness_{uuid.uuid4().hex[:12]}"


def test_ping_answers_without_credentials(iotdb_server: IoTDBCluster) -> None:
    response = httpx.get(iotdb_server.rest_url + "/ping", timeout=5.0)

    assert response.status_code == 200
    assert response.json()["code"] == SUCCESS


def test_insert_tablet_and_query_it_back(iotdb_server: IoTDBCluster) -> None:
    database = _database_name()
    device = f"{database}.probe"
    tablet = {
        "device": device,
        "is_aligned": False,
        "timestamps": [1_700_000_000_000, 1_700_000_001_000, 1_700_000_002_000],
        "measurements": ["temperature", "count"],
        "data_types": ["DOUBLE", "INT32"],
        "values": [[21.5, 22.0, 22.75], [1, 2, 3]],
    }

    created = iotdb_server.non_query(f"CREATE DATABASE {database}")
    inserted = iotdb_server.insert_tablet(tablet)
    rows = iotdb_server.sql(f"SELECT temperature, count FROM {device}").json()

    assert created.json() == {"code": SUCCESS, "message": "SUCCESS_STATUS"}
    assert inserted.json()["code"] == SUCCESS
    assert rows["expressions"] == [f"{device}.temperature", f"{device}.count"]
    assert rows["timestamps"] == tablet["timestamps"]
    assert rows["values"] == tablet["values"]


def test_bad_sql_is_http_200_with_an_error_code(iotdb_server: IoTDBCluster) -> None:
    response = iotdb_server.sql("SELEC nothing FROM nowhere")

    assert response.status_code == 200
    assert response.json()["code"] != SUCCESS
    assert response.json()["message"]


def test_changed_root_password_replaces_the_old_one(
    iotdb_server: IoTDBCluster,
) -> None:
    old = iotdb_server.password
    new = f"Pw-{uuid.uuid4().hex[:16]}"

    changed = iotdb_server.non_query(f"ALTER USER root SET PASSWORD '{new}'")
    try:
        assert changed.json()["code"] == SUCCESS
        assert (
            iotdb_server.sql("SHOW DATABASES", password=new).json().get("code", SUCCESS)
            == SUCCESS
        )

        rejected = _wait_until_rejected(iotdb_server, old)
        assert rejected.status_code == 401
        assert rejected.json()["code"] == WRONG_LOGIN_PASSWORD
    finally:
        restored = iotdb_server.non_query(
            f"ALTER USER root SET PASSWORD '{old}'", password=new
        )
        assert restored.json()["code"] == SUCCESS
        _wait_until_accepted(iotdb_server, old)


def _wait_until_rejected(cluster: IoTDBCluster, password: str) -> httpx.Response:
    """The REST service keeps a login cached for REST_AUTH_CACHE_SECONDS."""
    deadline = time.monotonic() + REST_AUTH_CACHE_SECONDS + 10
    while True:
        response = cluster.sql("SHOW DATABASES", password=password)
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _wait_until_accepted(cluster: IoTDBCluster, password: str) -> None:
    deadline = time.monotonic() + REST_AUTH_CACHE_SECONDS + 10
    while cluster.sql("SHOW DATABASES", password=password).status_code != 200:
        assert time.monotonic() < deadline, "restored password never accepted"
        time.sleep(0.5)
