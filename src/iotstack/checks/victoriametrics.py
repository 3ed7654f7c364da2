"""VictoriaMetrics: write a probe through two ingest APIs and read it back exactly."""

from __future__ import annotations

import json
import random
import time

import httpx

from iotstack.checks.base import CheckContext, CheckFailure, poll, request

SERVICE = "VictoriaMetrics"
INDEX_DELAY_S = 1.6


def probe_victoriametrics(context: CheckContext) -> str:
    """Prometheus import and Influx line protocol in, `/api/v1/export` out."""
    base = context.endpoints.url("victoriametrics")
    value = random.randint(1, 999_999) + 0.5
    stamp_ms = int(time.time() * 1000)
    probe = context.probe_id
    expected = {
        ("iotstack_probe", "prometheus"): value,
        ("iotstack_probe_value", "influx"): value + 1,
    }

    with context.client() as client:
        _write(
            client,
            f"{base}/api/v1/import/prometheus",
            f'iotstack_probe{{probe="{probe}",via="prometheus"}} {value} {stamp_ms}\n',
        )
        _write(
            client,
            f"{base}/write?precision=ms",
            f"iotstack_probe,probe={probe},via=influx value={value + 1} {stamp_ms}\n",
        )
        # A query before the new series is indexed (~1.5 s) can hide it for
        # several seconds more, so the first read waits for the index.
        time.sleep(min(INDEX_DELAY_S, context.remaining))
        found = poll(
            context,
            lambda: _exported(client, base, probe, len(expected)),
            f"probe {probe} in {base}/api/v1/export",
        )

    for (name, via), want in expected.items():
        got = found.get((name, via))
        if got != (stamp_ms, want):
            raise CheckFailure(
                f"{name}{{via={via}}} read back as {got}, wrote {(stamp_ms, want)}"
            )
    return "import/prometheus and /write read back exactly via export"


def _write(client: httpx.Client, url: str, body: str) -> None:
    response = request(client, SERVICE, "POST", url, content=body)
    if response.status_code not in (200, 204):
        raise CheckFailure(
            f"{SERVICE} refused a write to {url}: HTTP {response.status_code} "
            f"{response.text[:200]}"
        )


def _exported(
    client: httpx.Client, base: str, probe: str, want: int
) -> dict[tuple[str, str], tuple[int, float]] | None:
    """Series of the probe as (name, via) → (last timestamp, last value)."""
    url = f"{base}/api/v1/export"
    response = request(
        client, SERVICE, "GET", url, params={"match[]": f'{{probe="{probe}"}}'}
    )
    if response.status_code != 200:
        raise CheckFailure(f"{SERVICE} export failed: HTTP {response.status_code}")

    series: dict[tuple[str, str], tuple[int, float]] = {}
    for line in response.text.splitlines():
        row = json.loads(line)
        metric = row["metric"]
        key = (metric.get("__name__", ""), metric.get("via", ""))
        series[key] = (row["timestamps"][-1], row["values"][-1])
    return series if len(series) >= want else None
