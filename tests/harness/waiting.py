"""Waiting for something a real server does eventually, without blind sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(read: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    """Call `read` with growing pauses until it returns something not None."""
    deadline = time.monotonic() + timeout
    pause = 0.1
    while time.monotonic() < deadline:
        value = read()
        if value is not None:
            return value
        time.sleep(pause)
        pause = min(pause * 2, 1.0)
    raise AssertionError(f"{what or 'nothing read'} within {timeout} s")
