"""When `up` pulls images: kept apart so the CLI can offer it without the SDK."""

from __future__ import annotations

from enum import StrEnum


class PullPolicy(StrEnum):
    """When `up` pulls a service's image."""

    missing = "missing"
    always = "always"
    never = "never"
