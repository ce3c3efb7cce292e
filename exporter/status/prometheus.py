"""The few Prometheus HTTP API calls the status page needs, over httpx.

Every answer is checked for Prometheus' envelope (``status``/``data``) and for
the shape of its data, so a URL that points at some other server, or a server
that answers oddly, fails as a query error, never as a 500.  No answer is read
past :data:`MAX_ANSWER_BYTES` (:data:`MAX_RULES_ANSWER_BYTES` for the rules
listing; both after decompression), and no more than
:data:`MAX_ITEMS` samples, points, rules or alerts are taken from one answer,
so however large an answer is the page stays small.
"""

from __future__ import annotations

import json
import math
from typing import Any

import httpx

from exporter.redaction import redact_text

#: the most bytes read of one query or alerts answer: the page's queries answer in a
#: few KiB, a thousand firing alerts in well under a MiB.  JSON of tiny objects takes
#: about 25 times its size once parsed, and the page's ~30 queries run at once (their
#: bodies are parsed one at a time), so this bounds the page's memory to tens of MB.
MAX_ANSWER_BYTES = 1024 * 1024
#: the rules listing, read alone before the queries, may be larger: a Prometheus
#: with thousands of recording rules lists them in a few MiB
MAX_RULES_ANSWER_BYTES = 4 * 1024 * 1024
RULES_PATH = "/api/v1/rules"
#: the most samples, points, rule names or firing alerts taken from one answer
MAX_ITEMS = 5000
#: the most labels kept of one alert
MAX_LABELS = 32
#: the longest query failure reason kept
MAX_REASON_CHARS = 200
#: the annotations of an alert the page shows (the rest never leaves this module)
SHOWN_ANNOTATIONS = ("runbook_url", "summary")
#: the longest annotation kept (a runbook URL, a summary line)
MAX_ANNOTATION_CHARS = 2000


class AnswerError(ValueError):
    """An answer of the wrong shape, or too large, to be a Prometheus API answer."""


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
    text = str(exc) if isinstance(exc, RuntimeError | AnswerError) else type(exc).__name__
    text = redact_text(text)  # a proxy's error may echo our Authorization header back
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 3] + "..."


def _number(raw: Any) -> float | None:
    """A sample value (Prometheus sends them as strings); ``None`` when not finite."""
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise AnswerError(f"a sample value is a {type(raw).__name__}, not a number")
    value = float(raw)
    return None if math.isnan(value) or math.isinf(value) else value


def _list(data: dict[str, Any], key: str, what: str) -> list[Any]:
    """``data[key]`` as a list (missing or null: empty), at most :data:`MAX_ITEMS` long."""
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise AnswerError(f"{what} is a {type(value).__name__}, not a list")
    return value[:MAX_ITEMS]


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise AnswerError(f"{what} is a {type(value).__name__}, not an object")
    return value


def _pair(value: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(value, list) or len(value) != 2:
        raise AnswerError(f"{what} is not a [time, value] pair")
    return value[0], value[1]


def alert_labels(alert: Any) -> dict[str, str] | None:
    """The labels of an alert from ``/api/v1/alerts`` as text (``None``: not an alert).

    An alert without labels (or with labels that are not text) still counts: it
    shows as ``?`` rather than failing the page."""
    if not isinstance(alert, dict):
        return None
    raw = alert.get("labels")
    if not isinstance(raw, dict):
        return {}
    labels = {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str)}
    return dict(sorted(labels.items())[:MAX_LABELS]) if len(labels) > MAX_LABELS else labels


def alert_annotations(alert: dict[str, Any]) -> dict[str, str]:
    """The annotations the page shows (:data:`SHOWN_ANNOTATIONS`), text only, bounded."""
    raw = alert.get("annotations")
    if not isinstance(raw, dict):
        return {}
    return {
        k: raw[k][:MAX_ANNOTATION_CHARS]
        for k in SHOWN_ANNOTATIONS
        if isinstance(raw.get(k), str) and raw[k]
    }


async def read_capped(
    client: httpx.AsyncClient, path: str, params: dict[str, Any] | None, limit: int
) -> tuple[httpx.Response, bytes]:
    """The answer's status and body, read no further than ``limit`` bytes."""
    async with client.stream("GET", path, params=params) as response:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                raise AnswerError(f"{path}: answer larger than {limit // (1024 * 1024)} MiB")
            chunks.append(chunk)
    return response, b"".join(chunks)


class PrometheusAPI:
    """Instant and range queries, recording rule names and firing alerts."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def _read(self, path: str, params: dict[str, Any] | None) -> tuple[httpx.Response, bytes]:
        """The answer's status and body, read no further than the path's byte cap."""
        limit = MAX_RULES_ANSWER_BYTES if path == RULES_PATH else MAX_ANSWER_BYTES
        return await read_capped(self.client, path, params, limit)

    async def _get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        response, content = await self._read(path, params)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            response.raise_for_status()  # not JSON: an HTTP error says more
            raise AnswerError(f"{path}: not a Prometheus API answer (not JSON)") from None
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
        result = _list(data, "result", "the result")
        if not result:
            return None
        return _number(_pair(_dict(result[0], "a sample").get("value"), "a sample's value")[1])

    async def by_label(self, expr: str, label: str) -> dict[str, float]:
        """An instant vector as ``{value of label: sample}``, numbers only."""
        data = await self._get("/api/v1/query", {"query": expr})
        out = {}
        for raw in _list(data, "result", "the result"):
            sample = _dict(raw, "a sample")
            metric = sample.get("metric") or {}
            key = _dict(metric, "a sample's labels").get(label, "")
            value = _number(_pair(sample.get("value"), "a sample's value")[1])
            if isinstance(key, str) and value is not None:
                out[key] = value
        return out

    async def series(
        self, expr: str, start: float, end: float, step: int
    ) -> list[tuple[float, float]]:
        """The first series of a range query, finite numbers only."""
        data = await self._get(
            "/api/v1/query_range", {"query": expr, "start": start, "end": end, "step": step}
        )
        result = _list(data, "result", "the result")
        if not result:
            return []
        points = []
        for raw in _list(_dict(result[0], "a series"), "values", "a series' values"):
            ts, raw_value = _pair(raw, "a point")
            time, value = _number(ts), _number(raw_value)
            if time is not None and value is not None:
                points.append((time, value))
        return points

    async def recorded_names(self) -> set[str]:
        """Names of the recording rules this Prometheus evaluates."""
        data = await self._get(RULES_PATH, {"type": "record"})
        names: set[str] = set()
        for group in _list(data, "groups", "the rule groups"):
            for rule in _list(_dict(group, "a rule group"), "rules", "a group's rules"):
                name = _dict(rule, "a rule").get("name")
                if isinstance(name, str) and len(names) < MAX_ITEMS:
                    names.add(name)
        return names

    async def label_values(self, label: str, match: str) -> list[str]:
        """The values ``label`` takes on the series ``match`` selects (sorted, text only)."""
        data = await self._get_list(f"/api/v1/label/{label}/values", {"match[]": match})
        return sorted({v for v in data[:MAX_ITEMS] if isinstance(v, str)})

    async def _get_list(self, path: str, params: dict[str, Any]) -> list[Any]:
        """An API answer whose ``data`` is a list (the label values endpoint)."""
        response, content = await self._read(path, params)
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            response.raise_for_status()
            raise AnswerError(f"{path}: not a Prometheus API answer (not JSON)") from None
        if not isinstance(body, dict) or body.get("status") != "success":
            raise RuntimeError(f"{path}: not a successful Prometheus API answer")
        data = body.get("data")
        if not isinstance(data, list):
            raise AnswerError(f"{path}: the values are not a list")
        return data

    async def firing_alerts(self) -> list[dict[str, Any]]:
        """The firing alerts, each as ``{"labels": {name: text}, "state": "firing",
        "annotations": {name: text}}`` (only the annotations the page shows)."""
        data = await self._get("/api/v1/alerts")
        found = []
        for alert in _list(data, "alerts", "the alerts"):
            labels = alert_labels(alert)
            if labels is not None and alert.get("state") == "firing":
                annotations = alert_annotations(alert)
                found.append({"labels": labels, "state": "firing", "annotations": annotations})
        return found
