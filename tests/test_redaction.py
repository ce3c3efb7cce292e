"""One redaction helper for every URL and DSN the product shows."""

from __future__ import annotations

import ast
import io
import logging
from pathlib import Path

import pytest

import exporter
from exporter.redaction import RedactSecrets, redact_dsn, redact_query, redact_text, redact_url

PACKAGE = Path(exporter.__file__).parent


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@cache:6379/0", "redis://user:***@cache:6379/0"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "rediss://default:s3cret@cache.example:6380/2",
            "rediss://default:***@cache.example:6380/2",
        ),
        ("redis://cache:6379/0", "redis://cache:6379/0"),
        ("redis://cache:6379/0?password=s3cret&x=1", "redis://cache:6379/0?password=***&x=1"),
        ("redis://u:s3cret@cache:bad/0", "<unparsable URL>"),
    ],
)
def test_redact_url_masks_passwords_and_keeps_user_host_port(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/app", "postgresql://app:***@db:5432/app"),
        ("host=db user=app password=s3cret dbname=app", "host=db user=app password=*** dbname=app"),
        ("host=db password = 'se cret' dbname=app", "host=db password = *** dbname=app"),
        (
            "postgresql://app@db/app?sslmode=verify-full&sslpassword=s3cret",
            "postgresql://app@db/app?sslmode=verify-full&sslpassword=***",
        ),
        (
            "postgresql://db/app?user=app&PassWord=s3cret",
            "postgresql://db/app?user=app&PassWord=***",
        ),
    ],
)
def test_redact_dsn_masks_the_password_in_both_dsn_forms(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/metrics", "/metrics"),
        ("/scrape?target=redis://:pw@h:6379/0", "/scrape?target=redis://:***@h:6379/0"),
        ("/x?token=abc&n=1", "/x?token=***&n=1"),
    ],
)
def test_redact_query_masks_urls_and_secret_named_values(path: str, shown: str) -> None:
    assert redact_query(path) == shown


def test_no_other_module_redacts_on_its_own() -> None:
    """A second helper would drift (one once kept the query, another dropped it)."""
    offenders = []
    for source in PACKAGE.rglob("*.py"):
        if source.name == "redaction.py":
            continue
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "redact" in node.name:
                offenders.append(f"{source.relative_to(PACKAGE)}: {node.name}")
    assert offenders == []


@pytest.mark.parametrize(
    "line",
    [
        'HTTP Request: GET http://admin:s3cret@prom:9090/api/v1/rules "HTTP/1.1 200 OK"',
        "connect failed: host=db password=s3cret dbname=app",
        "conninfo password='s3 cret' sslmode=require",
        "GET /scrape?target=redis%3A%2F%2Fu%3As3cret%40h%3A6379 HTTP/1.1",
        "redis://h:6379/0?sslpassword=s3cret&db=1",
    ],
)
def test_redact_text_masks_secrets_anywhere_in_a_line(line: str) -> None:
    assert "s3cret" not in redact_text(line)
    assert "***" in redact_text(line)


def test_the_handler_filter_redacts_any_logger_arguments_and_tracebacks() -> None:
    """httpx passes its URL as an object, not a str: it is redacted as its text."""

    class URL:
        def __str__(self) -> str:
            return "http://admin:s3cret@prom:9090/api"

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactSecrets())
    log = logging.getLogger("third.party.test")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("HTTP Request: %s %s %d", "GET", URL(), 200)
        try:
            raise ValueError("bad DSN host=h password=s3cret")
        except ValueError:
            log.exception("failed for %(url)s", {"url": "redis://:s3cret@h"})
    finally:
        log.removeHandler(handler)
    written = stream.getvalue()
    assert "HTTP Request: GET http://admin:***@prom:9090/api 200" in written
    assert "ValueError: bad DSN host=h password=***" in written
    assert "s3cret" not in written


def test_authorization_credentials_in_text_and_lone_users_of_urls_are_masked() -> None:
    echoed = "bad_data: auth was Basic cHU6UHJvbVNlY3JldFBX and Bearer abc.def-1"
    assert redact_text(echoed) == "bad_data: auth was Basic *** and Bearer ***"
    assert redact_url("http://t0ken@prom:9090/x", keep_user=False) == "http://***@prom:9090/x"
    assert redact_url("http://u:pw@prom:9090", keep_user=False) == "http://***@prom:9090"
    assert redact_url("redis://acl-user@h:6379/0") == "redis://acl-user@h:6379/0"
