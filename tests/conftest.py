"""Shared pytest set-up: fixture modules of the real-server harness."""

pytest_plugins: list[str] = [
    "harness.iotdb_fixtures",
    "harness.native_fixtures",
    "harness.engine_fixtures",
]
