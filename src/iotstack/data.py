"""Where iotstack's data files live: templates, profiles and schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

# libyaml's C parser and emitter where PyYAML was built with them: the pure
# Python ones dominate the time of a render.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_PACKAGE = Path(__file__).resolve().parent
_SOURCE_TREE = _PACKAGE.parent.parent


def data_dir(name: str) -> Path:
    """The installed data folder, or the source tree's in an editable install."""
    installed = _PACKAGE / name
    if installed.is_dir():
        return installed
    return _SOURCE_TREE / name


@cache
def load_profile(name: str) -> dict[str, Any]:
    """One YAML file from `profiles/`, parsed."""
    path = data_dir("profiles") / f"{name}.yaml"
    return parse_yaml(path.read_text(encoding="utf-8"))


def parse_yaml(text: str) -> Any:
    """Parse YAML with only standard tags (like `yaml.safe_load`)."""
    return yaml.load(text, Loader=_LOADER)


def compose_yaml(text: str) -> Any:
    """The YAML node tree, for line numbers (like `yaml.compose`)."""
    return yaml.compose(text, Loader=_LOADER)


def dump_yaml(data: Any, **options: Any) -> str:
    """Write data as YAML with only standard tags (like `yaml.safe_dump`)."""
    return yaml.dump(data, Dumper=_DUMPER, **options)
