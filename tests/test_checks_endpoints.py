"""Endpoint resolution and the check runner, without any server."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml

from iotstack.checks import runner
from iotstack.checks.base import CheckFailure
from iotstack.checks.endpoints import Endpoints, parse_overrides, resolve_endpoints
from iotstack.checks.runner import Check, applicable_checks, run_checks
from iotstack.errors import ConfigError
from iotstack.render import render_stack


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    config = {
        "network_mode": "host",
        "ports": {"victoriametrics": 18428, "mosquitto": 11883, "nginx": 18080 + 1},
    }
    (tmp_path / "iotstack.yaml").write_text(yaml.safe_dump(config))
    render_stack(tmp_path)
    return tmp_path


def test_endpoints_come_from_the_rendered_stack(stack: Path) -> None:
    endpoints = resolve_endpoints(stack, [])

    assert endpoints.url("victoriametrics") == "http://127.0.0.1:18428"
    assert endpoints.url("mqtt") == "mqtt://127.0.0.1:11883"
    assert endpoints.url("nginx") == "http://127.0.0.1:18081"
    assert not endpoints.has("influxdb")
    assert endpoints.mqtt_device_login()[0] == "device"
    assert endpoints.mqtt_device_login()[1] == endpoints.secret("MQTT_DEVICE_PASSWORD")


def test_endpoint_override_replaces_one_url(stack: Path) -> None:
    endpoints = resolve_endpoints(stack, ["victoriametrics=http://10.1.2.3:8428/"])

    assert endpoints.url("victoriametrics") == "http://10.1.2.3:8428"
    assert endpoints.url("iotdb") == "http://127.0.0.1:18080"


def test_without_a_stack_only_named_endpoints_are_checked(tmp_path: Path) -> None:
    endpoints = resolve_endpoints(tmp_path, ["influxdb=http://127.0.0.1:8086"])

    assert [check.name for check in applicable_checks(endpoints)] == ["influxdb"]


def test_without_a_stack_or_endpoints_says_how_to_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="iotstack init"):
        resolve_endpoints(tmp_path, [])


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("victoriametrics", "is not NAME=URL"),
        ("victoriametrics=", "is not NAME=URL"),
        ("vm=http://h:1", "names no known service 'vm'"),
        ("iotdb=ftp://h:1", "is not a http:// URL"),
        ("mqtt=http://h:1883", "is not a mqtt:// URL"),
        ("nginx=http://", "is not a http:// URL"),
    ],
)
def test_malformed_override_is_a_config_error(item: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        parse_overrides([item])

    assert raised.value.exit_code == 2


def test_full_stack_gets_every_check_but_influxdb(stack: Path) -> None:
    names = [check.name for check in applicable_checks(resolve_endpoints(stack, []))]

    assert names == [
        "victoriametrics",
        "iotdb",
        "ainode",
        "prometheus",
        "pipeline",
        "nginx",
        "grafana",
    ]


def _fake_endpoints() -> Endpoints:
    return Endpoints(urls={"nginx": "http://127.0.0.1:1"}, env={})


def _always(_endpoints: Endpoints) -> bool:
    return True


def _crash(_context) -> str:
    raise KeyError("boom")


def _fail(_context) -> str:
    raise CheckFailure("clear reason")


def _hang(context) -> str:
    time.sleep(context.timeout + runner.GRACE_S + 2)
    return "late"


def test_one_failing_or_crashing_check_does_not_stop_the_others(monkeypatch) -> None:
    monkeypatch.setattr(
        runner,
        "CHECKS",
        (
            Check("crash", "nginx", _crash, _always),
            Check("fail", "nginx", _fail, _always),
            Check("fine", "nginx", lambda _c: "ok detail", _always),
        ),
    )

    results = run_checks(_fake_endpoints(), timeout=5)

    assert [(r.name, r.ok, r.detail) for r in results] == [
        ("crash", False, "unexpected error: KeyError: 'boom'"),
        ("fail", False, "clear reason"),
        ("fine", True, "ok detail"),
    ]
    assert all(r.target == "http://127.0.0.1:1" for r in results)


def test_a_check_past_its_deadline_is_reported(monkeypatch) -> None:
    monkeypatch.setattr(runner, "GRACE_S", 0.2)
    monkeypatch.setattr(runner, "CHECKS", (Check("slow", "nginx", _hang, _always),))

    results = run_checks(_fake_endpoints(), timeout=1)

    assert [(r.name, r.ok, r.detail) for r in results] == [
        ("slow", False, "no answer within 1 s")
    ]
