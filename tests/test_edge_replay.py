"""`iotstack edge replay`: CSV rows become raw-sample messages, bad rows are named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotstack.edge import topics
from iotstack.edge.contracts import problems
from iotstack.edge.mqtt import Broker
from iotstack.edge.replay import read_csv, replay
from iotstack.errors import ConfigError


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "readings.csv"
    path.write_text(text)
    return path


def test_rows_become_raw_samples_on_their_topics(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "ts,site,device,metric,value,unit\n"
        "1700000000000,plant1,pump1,temperature,21.5,C\n"
        "2023-11-14T22:13:21Z,plant1,pump1,pressure,1.2,\n"
        ",plant1,pump2,temperature,20,\n",
    )

    readings = read_csv(path)

    assert [r.topic for r in readings] == [
        "iot/raw/plant1/pump1/temperature",
        "iot/raw/plant1/pump1/pressure",
        "iot/raw/plant1/pump2/temperature",
    ]
    payloads = [json.loads(r.payload()) for r in readings]
    assert payloads == [
        {"value": 21.5, "ts": 1700000000000, "unit": "C"},
        {"value": 1.2, "ts": 1700000001000},
        {"value": 20.0},
    ]
    assert all(problems("raw-sample", p) == [] for p in payloads)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("site,device,value\n", "readings.csv", "missing column(s) metric"),
        ("site,device,metric,value\na,b,c,warm\n", "readings.csv:2", "warm"),
        ("site,device,metric,value\na,b,c,1\na,b c,d,1\n", "readings.csv:3", "b c"),
        ("site,device,metric,value\na,b,c,nan\n", "readings.csv:2", "finite"),
    ],
)
def test_a_bad_file_is_refused_naming_the_line(
    tmp_path: Path, text: str, where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        read_csv(_csv(tmp_path, text))

    assert where in str(refused.value)
    assert message in str(refused.value)


def test_rate_must_be_positive_and_bounded(tmp_path: Path) -> None:
    readings = read_csv(_csv(tmp_path, "site,device,metric,value\na,b,c,1\n"))

    with pytest.raises(ConfigError, match="out of range"):
        replay(readings, Broker("127.0.0.1", 1), rate=0)


def test_topic_helpers_follow_the_scheme() -> None:
    assert topics.inference_topic("s", "d", "m") == "iot/inference/s/d/m"
    assert topics.model_topic("detector") == "iot/models/detector"
    assert topics.model_name_of("iot/models/detector") == "detector"
    assert topics.model_name_of("iot/models/a/b") is None
    assert topics.status_topic("gw1") == "iot/edge/gw1/status"
    with pytest.raises(ConfigError):
        topics.raw_topic("s", "d", "m/x")
