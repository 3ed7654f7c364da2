"""Where iotstack's data files live: templates, profiles and schemas."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

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
    return yaml.safe_load(path.read_text(encoding="utf-8"))
