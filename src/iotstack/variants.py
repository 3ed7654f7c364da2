"""The stack variants, each defined as data in `profiles/<variant>.yaml`."""

from __future__ import annotations

from dataclasses import dataclass, field

from iotstack.data import load_profile

VARIANTS = ("minimal", "iotdb-centric", "edge-first")


@dataclass(frozen=True)
class Route:
    """MQTT messages on `topic` go to each of `sinks` (metrics, iotdb)."""

    name: str
    topic: str
    sinks: tuple[str, ...]
    selective: bool = False


@dataclass(frozen=True)
class Variant:
    """What one variant puts in the stack and how data flows through it."""

    name: str
    summary: str
    services: tuple[str, ...]
    required: tuple[str, ...]
    routes: tuple[Route, ...]
    prometheus_remote_write: bool
    grafana_default_datasource: str
    model_registry: bool = False
    extra: dict = field(default_factory=dict)


def load_variant(name: str) -> Variant:
    """Read a variant's profile."""
    data = dict(load_profile(name))
    routes = tuple(
        Route(
            name=r["name"],
            topic=r["topic"],
            sinks=tuple(r["sinks"]),
            selective=r.get("selective", False),
        )
        for r in data.pop("routes")
    )
    return Variant(
        name=data.pop("name"),
        summary=data.pop("summary"),
        services=tuple(data.pop("services")),
        required=tuple(data.pop("required", ())),
        routes=routes,
        prometheus_remote_write=data.pop("prometheus_remote_write", False),
        grafana_default_datasource=data.pop("grafana_default_datasource"),
        model_registry=data.pop("model_registry", False),
        extra=data,
    )


def all_variants() -> list[Variant]:
    """Every variant, in the order users meet them."""
    return [load_variant(name) for name in VARIANTS]
