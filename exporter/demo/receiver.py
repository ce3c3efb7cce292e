"""An Alertmanager webhook receiver: records (and can print) the notifications it gets.

The demo routes its Alertmanager here so alerts show up in the terminal; the
live alert test uses it to see which alerts reached which receiver.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Notification:
    """One alert in one webhook call: which receiver path, status and labels."""

    receiver: str  # the URL path, e.g. "pager"
    status: str  # "firing" or "resolved"
    labels: dict[str, str]


class WebhookReceiver:
    """``http://127.0.0.1:<port>/<receiver>`` accepts Alertmanager's webhook JSON."""

    def __init__(self, on_alert: Callable[[Notification], None] | None = None) -> None:
        self.notifications: list[Notification] = []
        self._lock = threading.Lock()
        self._on_alert = on_alert
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook", daemon=True
        )

    def url(self, receiver: str) -> str:
        return f"http://127.0.0.1:{self.port}/{receiver}"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def received(self) -> list[Notification]:
        with self._lock:
            return list(self.notifications)

    def _record(self, receiver: str, payload: dict[str, Any]) -> None:
        for alert in payload.get("alerts", []):
            note = Notification(receiver, str(alert.get("status")), dict(alert.get("labels", {})))
            with self._lock:
                self.notifications.append(note)
            if self._on_alert is not None:
                self._on_alert(note)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    payload = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                outer._record(self.path.strip("/"), payload)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
