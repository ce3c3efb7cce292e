"""serve's log handlers: repeated lines are rate-limited, every line redacted."""

from __future__ import annotations

import io
import logging
import logging.config

from exporter.logs import RateLimitRepeats, uvicorn_log_config


def test_repeats_beyond_the_burst_are_dropped_then_counted() -> None:
    now = [0.0]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimitRepeats(burst=3, window=60.0, clock=lambda: now[0]))
    log = logging.getLogger("flood.test")
    log.addHandler(handler)
    log.propagate = False
    try:
        for i in range(1000):
            log.error("socket.accept() out of system resource (%d)", i)
        log.warning("another kind of line")
        now[0] = 61.0
        log.error("socket.accept() out of system resource (%d)", 1000)
    finally:
        log.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[:3] == [f"socket.accept() out of system resource ({i})" for i in range(3)]
    assert lines[3] == "another kind of line"
    assert lines[4] == "socket.accept() out of system resource (1000) [997 more like this dropped]"
    assert len(lines) == 5


def test_uvicorn_handlers_redact_and_the_error_log_is_rate_limited() -> None:
    config = uvicorn_log_config(
        {"version": 1, "handlers": {"default": {"class": "x"}, "access": {"class": "y"}}}
    )
    assert config["handlers"]["default"]["filters"] == ["redact", "rate_limit"]
    # one line per request is what an access log is for: redacted, never dropped
    assert config["handlers"]["access"]["filters"] == ["redact_queries", "redact"]
    logging.config.dictConfig({**config, "handlers": {}, "disable_existing_loggers": False})
