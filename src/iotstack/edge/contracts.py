"""The JSON Schema payload contracts under `schemas/`, loaded for validation."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from iotstack.data import data_dir

CONTRACTS = (
    "raw-sample",
    "aggregate",
    "inference-result",
    "model-announcement",
    "registry-manifest",
    "dead-letter",
)


def load_schema(name: str) -> dict[str, Any]:
    """One schema document, e.g. `raw-sample`."""
    path = data_dir("schemas") / f"{name}.schema.json"
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def _registry() -> Registry:
    """Every schema under its file name, so `$ref`s between them resolve."""
    resources = []
    for name in CONTRACTS:
        schema = load_schema(name)
        resource = Resource.from_contents(schema)
        resources += [(f"{name}.schema.json", resource), (schema["$id"], resource)]
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for one contract (formats such as date-time are checked)."""
    return Draft202012Validator(
        load_schema(name), registry=_registry(), format_checker=FormatChecker()
    )


def problems(name: str, document: Any) -> list[str]:
    """Why `document` breaks contract `name`: one line per error, empty if valid."""
    errors = sorted(validator(name).iter_errors(document), key=lambda e: e.path)
    return [
        f"{'/'.join(map(str, error.path)) or '(document)'}: {error.message}"
        for error in errors
    ]
