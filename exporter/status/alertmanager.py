"""Which firing alerts Alertmanager holds back (silenced or inhibited), over its v2 API.

Prometheus says an alert fires; only Alertmanager knows whether anyone is told.
``GET /api/v2/alerts`` lists each alert it holds with ``status.state``
(``active``, ``suppressed``, ``unprocessed``) and the ids of the silences and
inhibiting alerts that hold it back.  The answer is read like Prometheus' (a
byte cap, a shape check); a bad one fails as a query error and the page says
the delivery state is unknown.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx

from exporter.status.prometheus import (
    MAX_ANSWER_BYTES,
    MAX_ITEMS,
    AnswerError,
    alert_labels,
    read_capped,
)

ALERTS_PATH = "/api/v2/alerts"


@dataclass(frozen=True)
class Held:
    """One alert Alertmanager holds back, and why."""

    labels: dict[str, str]
    silenced: bool
    inhibited: bool

    @property
    def reason(self) -> str:
        """``silenced``, ``inhibited`` or ``silenced and inhibited``."""
        return " and ".join(
            word for word, on in (("silenced", self.silenced), ("inhibited", self.inhibited)) if on
        )


def _ids(status: dict[str, Any], key: str) -> bool:
    value = status.get(key)
    return isinstance(value, list) and bool(value)


class AlertmanagerAPI:
    """The held-back alerts of one Alertmanager."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def held_back(self) -> list[Held]:
        """Alerts whose ``status.state`` is ``suppressed`` (silenced or inhibited)."""
        params = {"active": "true", "silenced": "true", "inhibited": "true"}
        response, content = await read_capped(self.client, ALERTS_PATH, params, MAX_ANSWER_BYTES)
        response.raise_for_status()
        try:
            body = json.loads(content)
        except (ValueError, RecursionError):
            raise AnswerError(f"{ALERTS_PATH}: not an Alertmanager answer (not JSON)") from None
        if not isinstance(body, list):
            raise AnswerError(f"{ALERTS_PATH}: not an Alertmanager answer (not a list)")
        found = []
        for alert in body[:MAX_ITEMS]:
            labels = alert_labels(alert)
            status = alert.get("status") if isinstance(alert, dict) else None
            if labels is None or not isinstance(status, dict):
                continue
            if status.get("state") != "suppressed":
                continue
            silenced, inhibited = _ids(status, "silencedBy"), _ids(status, "inhibitedBy")
            found.append(Held(labels, silenced, inhibited or not silenced))
        return found


#: the most held-back alerts of one name compared label by label with a firing alert
#: (beyond, only an exact match of every label is found), so matching stays linear
MAX_SCAN = 200


class HeldIndex:
    """Held-back alerts looked up by a Prometheus alert's labels.

    Alertmanager's labels are the alert's plus Prometheus' external labels: an exact
    match is a dict lookup; otherwise the held alerts of the same name are scanned
    for one that carries every label of the alert (at most :data:`MAX_SCAN` of them)."""

    def __init__(self, held: list[Held]) -> None:
        self.exact = {frozenset(h.labels.items()): h for h in held}
        self.by_name: dict[str, list[Held]] = {}
        for h in held:
            self.by_name.setdefault(h.labels.get("alertname", ""), []).append(h)

    def match(self, labels: dict[str, str]) -> Held | None:
        if not labels:
            return None
        found = self.exact.get(frozenset(labels.items()))
        if found is not None:
            return found
        for entry in self.by_name.get(labels.get("alertname", ""), [])[:MAX_SCAN]:
            if all(entry.labels.get(k) == v for k, v in labels.items()):
                return entry
        return None
