"""What every smoke check shares: its result, its context and its failures."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import httpx

from iotstack.checks.endpoints import Endpoints

T = TypeVar("T")

FIRST_POLL_DELAY = 0.2
MAX_POLL_DELAY = 2.0


class CheckFailure(Exception):
    """A check found the stack not working; the message is the one-line reason."""


class Unreachable(CheckFailure):
    """A service did not answer at all (stopped, wrong URL, firewall)."""

    def __init__(self, service: str, url: str, reason: str = "") -> None:
        detail = f" ({reason})" if reason else ""
        super().__init__(f"{service} is not reachable at {url}{detail}")


class AuthFailure(CheckFailure):
    """A service refused the credentials from `.env`."""

    def __init__(self, service: str, url: str, user: str) -> None:
        super().__init__(
            f"{service} at {url} refused the login of user {user!r} "
            "(wrong password in .env?)"
        )


@dataclass(frozen=True)
class CheckResult:
    """One row of the check table."""

    name: str
    target: str
    ok: bool
    detail: str
    latency_s: float

    def as_dict(self) -> dict[str, object]:
        """The row as `--json` prints it."""
        return {
            "check": self.name,
            "target": self.target,
            "ok": self.ok,
            "detail": self.detail,
            "latency_ms": round(self.latency_s * 1000, 1),
        }


@dataclass
class CheckContext:
    """Endpoints, credentials and a deadline, handed to one check."""

    endpoints: Endpoints
    timeout: float
    probe_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.monotonic)

    @property
    def remaining(self) -> float:
        """Seconds left before this check's deadline."""
        return max(0.0, self.started + self.timeout - time.monotonic())

    def client(self) -> httpx.Client:
        """An HTTP client whose every request ends before the deadline."""
        return httpx.Client(timeout=min(10.0, max(1.0, self.remaining)))


def request(
    client: httpx.Client, service: str, method: str, url: str, **kwargs: object
) -> httpx.Response:
    """One HTTP request; no answer at all becomes an Unreachable naming the URL."""
    try:
        return client.request(method, url, **kwargs)  # type: ignore[arg-type]
    except httpx.TimeoutException:
        raise Unreachable(service, _origin(url), "timed out") from None
    except httpx.TransportError as exc:
        raise Unreachable(service, _origin(url), short_reason(exc)) from None


def poll(context: CheckContext, attempt: Callable[[], T | None], waiting_for: str) -> T:
    """Call `attempt` with growing pauses until it returns a value or time runs out."""
    delay = FIRST_POLL_DELAY
    while True:
        value = attempt()
        if value is not None:
            return value
        if context.remaining <= delay:
            raise CheckFailure(f"{waiting_for} not seen within {context.timeout:g} s")
        time.sleep(delay)
        delay = min(delay * 1.6, MAX_POLL_DELAY)


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}:{parsed.port}" if parsed.port else url


def short_reason(exc: Exception) -> str:
    """The gist of a connection error, e.g. `connection refused`."""
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:120]
