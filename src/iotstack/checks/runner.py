"""Run the checks that apply to a stack, concurrently, each with its own deadline."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from iotstack.checks.ainode import probe_ainode
from iotstack.checks.base import CheckContext, CheckFailure, CheckResult
from iotstack.checks.endpoints import Endpoints
from iotstack.checks.grafana import probe_grafana
from iotstack.checks.influxdb import probe_influxdb
from iotstack.checks.iotdb import probe_iotdb
from iotstack.checks.nginx import probe_nginx
from iotstack.checks.pipeline import probe_pipeline
from iotstack.checks.prometheus import probe_prometheus
from iotstack.checks.victoriametrics import probe_victoriametrics

log = logging.getLogger(__name__)

# Time a check gets beyond its own deadline to return its failure itself.
GRACE_S = 5.0


@dataclass(frozen=True)
class Check:
    """A named probe, the endpoint it targets and when it applies."""

    name: str
    endpoint: str
    probe: Callable[[CheckContext], str]
    applies: Callable[[Endpoints], bool]


def _has(*names: str) -> Callable[[Endpoints], bool]:
    return lambda endpoints: all(endpoints.has(name) for name in names)


def _has_ainode(endpoints: Endpoints) -> bool:
    plan = endpoints.plan
    wanted = plan is not None and (plan.has("ainode") or bool(plan.config.ainode.host))
    return wanted and endpoints.has("iotdb")


def _has_pipeline(endpoints: Endpoints) -> bool:
    plan = endpoints.plan
    routes = plan is not None and bool(plan.variant.routes)
    return routes and endpoints.has("mqtt") and endpoints.has("nodered")


CHECKS = (
    Check(
        "victoriametrics",
        "victoriametrics",
        probe_victoriametrics,
        _has("victoriametrics"),
    ),
    Check("influxdb", "influxdb", probe_influxdb, _has("influxdb")),
    Check("iotdb", "iotdb", probe_iotdb, _has("iotdb")),
    Check("ainode", "iotdb", probe_ainode, _has_ainode),
    Check("prometheus", "prometheus", probe_prometheus, _has("prometheus")),
    Check("pipeline", "mqtt", probe_pipeline, _has_pipeline),
    Check("nginx", "nginx", probe_nginx, _has("nginx")),
    Check("grafana", "grafana", probe_grafana, _has("grafana")),
)


def applicable_checks(endpoints: Endpoints) -> list[Check]:
    """The checks whose services this stack has."""
    return [check for check in CHECKS if check.applies(endpoints)]


def run_checks(endpoints: Endpoints, timeout: float) -> list[CheckResult]:
    """Run every applicable check at once; results in the catalogue's order."""
    checks = applicable_checks(endpoints)
    if not checks:
        return []

    executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="check")
    futures = [executor.submit(run_one, check, endpoints, timeout) for check in checks]
    wait(futures, timeout=timeout + GRACE_S)
    executor.shutdown(wait=False, cancel_futures=True)

    results = []
    for check, future in zip(checks, futures, strict=True):
        if future.done():
            results.append(future.result())
        else:
            results.append(
                _result(
                    check, endpoints, False, f"no answer within {timeout:g} s", timeout
                )
            )
    return results


def run_one(check: Check, endpoints: Endpoints, timeout: float) -> CheckResult:
    """One check: its detail line on success, its one-line reason on failure."""
    context = CheckContext(endpoints=endpoints, timeout=timeout)
    started = time.monotonic()
    try:
        detail, ok = check.probe(context), True
    except CheckFailure as exc:
        detail, ok = str(exc), False
    except Exception as exc:  # noqa: BLE001 - a check must never crash the others
        log.debug("check %s crashed", check.name, exc_info=True)
        detail, ok = f"unexpected error: {type(exc).__name__}: {exc}", False
    return _result(check, endpoints, ok, detail, time.monotonic() - started)


def _result(
    check: Check, endpoints: Endpoints, ok: bool, detail: str, latency_s: float
) -> CheckResult:
    return CheckResult(
        name=check.name,
        target=endpoints.url(check.endpoint),
        ok=ok,
        detail=detail,
        latency_s=latency_s,
    )
