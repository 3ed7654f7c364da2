"""What a benchmark is given (options) and hands back (measured sections)."""

from __future__ import annotations

import statistics
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Options:
    """How hard to measure and where to work."""

    quick: bool
    work_dir: Path
    resources: ExitStack = field(default_factory=ExitStack)
    shared: dict[str, Any] = field(default_factory=dict)

    def repeat(self, full: int, quick: int = 1) -> int:
        """How many runs of one measurement: ``quick`` in a quick run."""
        return quick if self.quick else full


@dataclass
class Measurement:
    """One measured figure, and what it is compared with.

    ``ratio`` is value / reference for both times and rates, so a time ratio
    below 1 and a rate ratio near 1 are good; ``note`` says which is which.
    """

    name: str
    value: float
    unit: str
    reference_name: str = ""
    reference_value: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """The measured value over the reference, when there is one."""
        if not self.reference_value:
            return None
        return self.value / self.reference_value

    def as_row(self) -> list[str]:
        """The measurement as table cells."""
        reference = ""
        if self.reference_value is not None:
            reference = (
                f"{self.reference_name}: {fmt(self.reference_value)} {self.unit}"
            )
        elif self.reference_name:
            reference = self.reference_name
        ratio = "" if self.ratio is None else f"{self.ratio:.2f}"
        return [
            self.name,
            f"{fmt(self.value)} {self.unit}",
            reference,
            ratio,
            self.note,
        ]


@dataclass
class Section:
    """One benchmark's results, how they were measured and what was left out."""

    name: str
    title: str
    method: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str = ""
    seconds: float = 0.0

    def add(self, measurement: Measurement) -> Measurement:
        """Record a measurement and return it."""
        self.measurements.append(measurement)
        return measurement


COLUMNS = ["measurement", "value", "compared with", "ratio", "note"]


def fmt(value: float) -> str:
    """A number with about three significant digits."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    if abs(value) >= 0.01:
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def percentile(samples: list[float], share: float) -> float:
    """The ``share`` (0–1) percentile of ``samples``, nearest rank."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(samples: list[float]) -> float:
    """The median of a non-empty list."""
    return statistics.median(samples)
