"""Grafana: `/api/health`, then the health of each provisioned data source."""

from __future__ import annotations

import httpx

from iotstack import grafana
from iotstack.checks.base import AuthFailure, CheckContext, CheckFailure, request

SERVICE = "Grafana"


def probe_grafana(context: CheckContext) -> str:
    """Database ok, and every data source iotstack provisioned answers healthy."""
    endpoints = context.endpoints
    base = endpoints.url("grafana") + endpoints.config.grafana.sub_path
    user = endpoints.secret("GRAFANA_ADMIN_USER", "admin")
    sources = grafana.datasources(endpoints.plan) if endpoints.plan else []
    uids = [source["uid"] for source in sources]

    with context.client() as client:
        response = request(client, SERVICE, "GET", f"{base}/api/health")
        if response.status_code != 200 or response.json().get("database") != "ok":
            raise CheckFailure(
                f"{SERVICE} {base}/api/health: HTTP {response.status_code} "
                f"{response.text[:200]}"
            )

        client.auth = httpx.BasicAuth(user, endpoints.secret("GRAFANA_ADMIN_PASSWORD"))
        unhealthy = []
        for uid in uids:
            url = f"{base}/api/datasources/uid/{uid}/health"
            answer = request(client, SERVICE, "GET", url)
            if answer.status_code == 401:
                raise AuthFailure(SERVICE, base, user)
            if answer.status_code != 200:
                unhealthy.append(f"{uid}: HTTP {answer.status_code} {_message(answer)}")

    if unhealthy:
        raise CheckFailure("data sources unhealthy: " + "; ".join(unhealthy))
    return f"healthy, {len(uids)} data sources OK"


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message", ""))[:160]
    except ValueError:
        return response.text[:160]
