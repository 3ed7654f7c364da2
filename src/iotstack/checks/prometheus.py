"""Prometheus: every scrape target is up, and remote_write reaches VictoriaMetrics."""

from __future__ import annotations

import time
from typing import Any

import httpx

from iotstack.checks.base import CheckContext, CheckFailure, poll, request

SERVICE = "Prometheus"
RECENT_S = 120


def probe_prometheus(context: CheckContext) -> str:
    """Targets from `/api/v1/targets`; then Prometheus' own series in VM."""
    base = context.endpoints.url("prometheus")

    with context.client() as client:
        targets = poll(
            context,
            lambda: _scraped_targets(client, base),
            f"a first scrape of every target of {base}",
        )
        down = [t for t in targets if t["health"] != "up"]
        if down:
            raise CheckFailure(
                "targets down: "
                + "; ".join(
                    f"{t['labels'].get('job')} {t['scrapeUrl']}: {t.get('lastError')}"
                    for t in down
                )
            )

        detail = f"{len(targets)} targets up"
        if not _writes_to_victoriametrics(context):
            return detail
        stack = context.endpoints.config.project
        poll(
            context,
            lambda: _remote_written(client, context, stack),
            f'up{{stack="{stack}"}} from remote_write in VictoriaMetrics',
        )
    return detail + f'; remote_write reaches VictoriaMetrics (stack="{stack}")'


def _scraped_targets(client: httpx.Client, base: str) -> list[dict[str, Any]] | None:
    """Active targets once none waits for its first scrape."""
    response = request(client, SERVICE, "GET", f"{base}/api/v1/targets")
    if response.status_code != 200:
        raise CheckFailure(f"{SERVICE} /api/v1/targets: HTTP {response.status_code}")

    # Right after start, targets are still being discovered or wait to be scraped.
    targets = response.json()["data"]["activeTargets"]
    if not targets or any(target["health"] == "unknown" for target in targets):
        return None
    return targets


def _writes_to_victoriametrics(context: CheckContext) -> bool:
    endpoints = context.endpoints
    variant = endpoints.plan.variant if endpoints.plan else None
    remote_write = variant.prometheus_remote_write if variant else False
    return remote_write and endpoints.has("victoriametrics")


def _remote_written(client: httpx.Client, context: CheckContext, stack: str):
    """Recent samples of `up` carrying Prometheus' external `stack` label."""
    base = context.endpoints.url("victoriametrics")
    response = request(
        client,
        "VictoriaMetrics",
        "GET",
        f"{base}/api/v1/export",
        params={
            "match[]": f'up{{stack="{stack}"}}',
            "start": str(int(time.time()) - RECENT_S),
        },
    )
    if response.status_code != 200:
        raise CheckFailure(f"VictoriaMetrics export: HTTP {response.status_code}")
    return response.text.strip() or None
