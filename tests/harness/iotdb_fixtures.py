"""Pytest fixtures for the real IoTDB 1C1D of `tests/harness/iotdb.py`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from harness.iotdb import (
    IOTDB_VERSION,
    IoTDBCluster,
    allocate_ports,
    iotdb_jars_present,
    iotdb_lib_dir,
    write_minimal_properties,
)


@pytest.fixture(scope="session")
def iotdb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IoTDBCluster]:
    """A running IoTDB ConfigNode + DataNode with REST on, shared by the session.

    It starts from a minimal `iotdb-system.properties` on free ports; the
    yielded cluster gives `rest_url`, `rpc_port`, `username`, `password` and
    `conf_dir`. A test that changes the root password must change it back.
    """
    if not iotdb_jars_present():
        pytest.skip(
            f"IoTDB {IOTDB_VERSION} jars not found in {iotdb_lib_dir()}; "
            "run scripts/deps/iotdb.sh (or scripts/install-test-deps.sh)"
        )

    root = tmp_path_factory.mktemp("iotdb")
    conf_dir = root / "conf"
    write_minimal_properties(conf_dir, allocate_ports())

    with IoTDBCluster(conf_dir=conf_dir, work_dir=root / "run") as cluster:
        yield cluster
