"""The few Prometheus HTTP API calls the status page needs, over httpx.

Every answer is checked for Prometheus' envelope (``status``/``data``), so a URL
that points at some other server fails as a query error, never as a 500.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

#: what a failed query raises: transport errors, Prometheus' own error, or an answer
#: of an unexpected shape
QUERY_ERRORS: tuple[type[Exception], ...] = (
    httpx.HTTPError,
    RuntimeError,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
)


def reason(exc: Exception) -> str:
    """What to tell a reader about a failed query (Prometheus' message if it sent one)."""
    return str(exc) if isinstance(exc, RuntimeError) else type(exc).__name__


def _number(raw: Any) -> float | None:
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


class PrometheusAPI:
    """Instant and range queries, recording rule names and firing alerts."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response = await self.client.get(path, params=params)
        try:
            body = response.json()
        except ValueError:
            response.raise_for_status()  # not JSON: an HTTP error says more
            raise
        if response.is_error and not (isinstance(body, dict) and body.get("status") == "error"):
            response.raise_for_status()
        if not isinstance(body, dict) or "status" not in body:
            raise RuntimeError(f"{path}: not a Prometheus API answer")
        if body.get("status") != "success":
            raise RuntimeError(f"{path}: {body.get('errorType')}: {body.get('error')}")
        if not isinstance(body.get("data"), dict):
            raise RuntimeError(f"{path}: not a Prometheus API answer")
        return body["data"]

    async def scalar(self, expr: str) -> float | None:
        """First sample of an instant query; ``None`` when empty or not a number."""
        data = await self._get("/api/v1/query", {"query": expr})
        result = data.get("result") or []
        return _number(result[0]["value"][1]) if result else None

    async def by_label(self, expr: str, label: str) -> dict[str, float]:
        """An instant vector as ``{value of label: sample}``, numbers only."""
        data = await self._get("/api/v1/query", {"query": expr})
        out = {}
        for sample in data.get("result") or []:
            value = _number(sample["value"][1])
            if value is not None:
                out[str(sample["metric"].get(label, ""))] = value
        return out

    async def series(
        self, expr: str, start: float, end: float, step: int
    ) -> list[tuple[float, float]]:
        """The first series of a range query, numbers only."""
        data = await self._get(
            "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}
        )
        result = data.get("result") or []
        if not result:
            return []
        points = []
        for ts, raw in result[0]["values"]:
            value = _number(raw)
            if value is not None:
                points.append((float(ts), value))
        return points

    async def recorded_names(self) -> set[str]:
        """Names of the recording rules this Prometheus evaluates."""
        data = await self._get("/api/v1/rules", {"type": "record"})
        return {rule["name"] for group in data.get("groups", []) for rule in group["rules"]}

    async def firing_alerts(self) -> list[dict[str, Any]]:
        data = await self._get("/api/v1/alerts")
        return [a for a in data.get("alerts", []) if a.get("state") == "firing"]
