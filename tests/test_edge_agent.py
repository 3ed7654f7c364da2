"""The edge agent's refusals and link switching that need no server.

Downloads, checksum refusal and rollback run against real Nginx and
Mosquitto in `test_edge_pipeline.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotstack.edge.agent import EdgeAgent, _point
from iotstack.edge.mqtt import Broker
from iotstack.errors import ConfigError

GOOD = {
    "name": "detector",
    "version": "1.0.0",
    "sha256": "0" * 64,
    "size": 10,
    "url": "detector/1.0.0/model.bin",
    "framework": "onnx",
    "created": "2026-01-01T00:00:00+00:00",
}


@pytest.fixture
def agent(tmp_path: Path) -> EdgeAgent:
    return EdgeAgent(
        broker=Broker("127.0.0.1", 1),
        registry_url="http://127.0.0.1:1/models/",
        models_dir=tmp_path / "models",
        agent_id="gw1",
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "announcement is not JSON"),
        (json.dumps({"name": "detector"}).encode(), "announcement lacks one of"),
        (json.dumps({**GOOD, "name": "other"}).encode(), "names another model"),
        (json.dumps({**GOOD, "version": "../x"}).encode(), "not a plain name"),
        (json.dumps({**GOOD, "size": -1}).encode(), "not a byte count"),
        (json.dumps({**GOOD, "url": "../../etc/passwd"}).encode(), "leaves the"),
        (json.dumps({**GOOD, "url": "http://elsewhere/m"}).encode(), "leaves the"),
    ],
)
def test_bad_announcements_are_refused_with_a_reason(
    agent: EdgeAgent, payload: bytes, reason: str
) -> None:
    outcome = agent.handle("iot/models/detector", payload)

    assert outcome is not None
    assert outcome.result == "refused"
    assert reason in outcome.reason
    assert agent.status()["models"] == {}


def test_other_topics_and_cleared_announcements_are_ignored(agent: EdgeAgent):
    assert agent.handle("iot/models/detector/extra", b"{}") is None
    assert agent.handle("iot/models/detector", b"") is None


def test_point_replaces_a_link_atomically(tmp_path: Path) -> None:
    first, second = tmp_path / "v1", tmp_path / "v2"
    first.mkdir()
    second.mkdir()
    link = tmp_path / "current"

    _point(link, first)
    _point(link, second)

    assert link.resolve() == second
    assert not link.readlink().is_absolute()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["current", "v1", "v2"]


def test_broker_addresses_parse_or_fail_clearly() -> None:
    assert Broker.parse("gw.local:1884", "u", "p") == Broker("gw.local", 1884, "u", "p")
    assert Broker.parse("gw.local", None, None).port == 1883
    with pytest.raises(ConfigError, match="is not HOST:PORT"):
        Broker.parse("gw.local:mqtt", None, None)
