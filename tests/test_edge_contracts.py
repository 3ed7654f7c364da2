"""The payload contracts: schemas are valid, and examples sort as documented.

`EXAMPLES` is also driven through the real Node-RED flow by
`test_edge_pipeline.py`, so the flow's checks and the schemas must agree.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from iotstack.edge.contracts import CONTRACTS, load_schema, problems
from iotstack.render import render_stack
from iotstack.scaffold import init_stack

# (route, metric or model topic segment, payload text, valid?)
EXAMPLES: list[tuple[str, str, str, bool]] = [
    ("raw", "temperature", "21.5", True),
    ("raw", "temperature", '{"value": 21.5}', True),
    ("raw", "temperature", '{"value": -3, "ts": 1700000000000, "unit": "C"}', True),
    ("raw", "temperature", '{"value": "21.5"}', False),
    ("raw", "temperature", '{"ts": 1700000000000}', False),
    ("raw", "temperature", '{"value": 1, "ts": 0}', False),
    ("raw", "temperature", '{"value": 1, "ts": 1.5}', False),
    ("raw", "temperature", '{"value": 1, "colour": "red"}', False),
    ("raw", "temperature", '{"value": 1, "unit": 5}', False),
    ("raw", "temperature", '"warm"', False),
    ("raw", "temperature", "[1, 2]", False),
    ("raw", "temperature", "null", False),
    ("raw", "temperature", "not json", False),
    ("inference", "detector", '{"score": 0.2}', True),
    (
        "inference",
        "detector",
        '{"score": 0.9, "ts": 1700000000000, "model_version": "1.0.0",'
        ' "aggregates": {"mean": 1.5, "max": 3}}',
        True,
    ),
    ("inference", "detector", '{"score": "high"}', False),
    ("inference", "detector", '{"aggregates": {"mean": 1}}', False),
    ("inference", "detector", '{"score": 0.1, "aggregates": {"bad-name": 1}}', False),
    ("inference", "detector", '{"score": 0.1, "aggregates": {"mean": "x"}}', False),
    ("inference", "detector", '{"score": 0.1, "aggregates": [1]}', False),
    ("inference", "detector", '{"score": 0.1, "model_version": 2}', False),
    ("inference", "detector", '{"score": 0.1, "label": "cat"}', False),
    ("inference", "detector", "17", False),
]

CONTRACT_OF_ROUTE = {"raw": "raw-sample", "inference": "inference-result"}


def schema_accepts(route: str, payload: str) -> bool:
    """Whether the route's JSON Schema accepts a payload text."""
    try:
        document = json.loads(payload)
    except ValueError:
        return False
    return not problems(CONTRACT_OF_ROUTE[route], document)


@pytest.mark.parametrize("name", CONTRACTS)
def test_every_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)

    Draft202012Validator.check_schema(schema)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].endswith(f"/{name}.schema.json")


@pytest.mark.parametrize(("route", "segment", "payload", "valid"), EXAMPLES)
def test_examples_sort_as_the_contract_says(
    route: str, segment: str, payload: str, valid: bool
) -> None:
    assert schema_accepts(route, payload) is valid


def test_inference_aggregates_use_the_aggregate_contract() -> None:
    found = problems("inference-result", {"score": 1, "aggregates": {"a b": 1}})

    assert found == ["aggregates: 'a b' does not match '^[A-Za-z0-9_]+$'"]


def test_dead_letter_contract_requires_a_reason() -> None:
    letter = {
        "route": "raw",
        "topic": "iot/raw/a/b/c",
        "payload": "x",
        "received": 1700000000000,
    }

    assert problems("dead-letter", {**letter, "reason": "payload is not JSON"}) == []
    assert problems("dead-letter", letter) == [
        "(document): 'reason' is a required property"
    ]


def _render(tmp_path: Path, variant: str) -> Path:
    stack = tmp_path / variant
    init_stack(stack, variant=variant, backend="victoriametrics", force=False)
    render_stack(stack)
    return stack


def test_edge_first_renders_alert_rules_promtool_accepts(tmp_path: Path) -> None:
    from harness.native import translate_config
    from harness.native_fixtures import require_binary

    promtool = require_binary("promtool")
    stack = _render(tmp_path, "edge-first")
    rules = stack / "prometheus" / "rules" / "edge.yml"
    config = translate_config(
        stack / "prometheus" / "prometheus.yml",
        tmp_path / "native" / "prometheus.yml",
        {"/etc/prometheus": stack / "prometheus"},
    )

    checked_rules = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True
    )
    checked_config = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True
    )

    assert checked_rules.returncode == 0, checked_rules.stdout + checked_rules.stderr
    assert "SUCCESS: 2 rules found" in checked_rules.stdout
    assert checked_config.returncode == 0, checked_config.stdout + checked_config.stderr
    assert str(rules) in checked_config.stdout


def test_minimal_has_no_edge_alert_rules(tmp_path: Path) -> None:
    stack = _render(tmp_path, "minimal")

    assert not (stack / "prometheus" / "rules").exists()
    assert "rule_files" not in (stack / "prometheus" / "prometheus.yml").read_text()
