"""How every module shows a URL or DSN: with its secrets masked.

One helper, below the collectors, the status page and the server alike, so a
password never leaks through one module that redacts differently.  A URL keeps
its scheme, user, host, port, path and query (operators need them to tell two
targets apart); its password and every query option whose name says it holds a
secret become ``***``.  A string that does not parse is replaced whole: it might
be a secret.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
#: query option names that hold secrets (a connection URL drops them: see
#: :func:`exporter.config.split_credentials`)
SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "pwd", "token", "secret", "auth"})
#: parts of query option names that mark them as secrets (``sslpassword``, ``auth_token``)
_SECRET_PARTS = ("pass", "pwd", "secret", "token")
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
UNPARSABLE = "<unparsable URL>"
#: in free text: a URL's ``user:password@`` (the password is what is masked)
_TEXT_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^\s/@:]*):[^\s@/]*@")
#: in free text: an Authorization header's credentials (``Basic dXNlcjpwdw==``)
_TEXT_AUTH_SCHEME = re.compile(r"\b(?P<head>(?:Basic|Bearer|Token|Digest)\s+)[A-Za-z0-9+/=._~-]+")
#: in free text: ``password=...``, ``sslpassword=...``, ``token=...`` (query or DSN form)
_TEXT_SECRET_VALUE = re.compile(
    r"(?P<head>\b[A-Za-z_]*(?:pass|pwd|secret|token)[A-Za-z_]*\s*=\s*)"
    r"(?:'(?:[^'\\]|\\.)*'|[^\s&;#'\",)]+)",
    re.IGNORECASE,
)


def is_secret_query_key(name: str) -> bool:
    """A query option that may hold a secret (``sslpassword``, ``auth_token``, ...)."""
    lowered = name.lower()
    return lowered in SECRET_QUERY_KEYS or any(part in lowered for part in _SECRET_PARTS)


def redact_url(url: str, *, keep_user: bool = True) -> str:
    """``redis://user:secret@host:6379/0?password=x`` -> ``redis://user:***@host:6379/0?password=***``."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return UNPARSABLE
    if "@" in url and "@" not in parts.netloc:
        return UNPARSABLE  # "user:pw@host" without "//": a password outside any netloc
    netloc = parts.netloc
    if "@" in netloc and not keep_user:  # a user part alone may be a token
        netloc = f"{MASK}@{netloc.rsplit('@', 1)[1]}"
    elif parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(k, MASK if is_secret_query_key(k) else v) for k, v in pairs], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact_dsn(dsn: str) -> str:
    """A PostgreSQL DSN (URL or ``key=value`` form) with its password masked."""
    if "://" in dsn:
        return redact_url(dsn)
    return _DSN_PASSWORD.sub(rf"\1{MASK}", dsn)


def redact_text(text: str) -> str:
    """Free text (a log line, an exception message) with every URL password and every
    ``password=``/``token=``-like value masked, percent-encoded or not."""
    if "%" in text:
        decoded = unquote(text)
        if decoded != text and redact_text(decoded) != decoded:
            text = decoded  # a secret hides behind percent-encoding: show it decoded, masked
    text = _TEXT_USERINFO.sub(rf"\g<head>:{MASK}@", text)
    text = _TEXT_AUTH_SCHEME.sub(rf"\g<head>{MASK}", text)
    return _TEXT_SECRET_VALUE.sub(rf"\g<head>{MASK}", text)


def redact_query(path: str) -> str:
    """A request path with every URL in its query redacted and secret-named values
    masked (for access-log lines: ``/scrape?target=redis://:pw@host``)."""
    head, sep, query = path.partition("?")
    if not sep:
        return path
    pairs = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        if "://" in value:
            value = redact_url(value)
        elif is_secret_query_key(name):
            value = MASK
        pairs.append((name, value))
    return f"{head}?{urlencode(pairs, safe='/:@*')}"


class RedactQueries(logging.Filter):
    """Mask credentials in the query strings of access-log lines.

    Every query value that is a URL goes through :func:`redact_url` (``/scrape?target=``
    and any other parameter, however its name is spelt or percent-encoded), and
    values of secret-looking parameters are masked.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_query(a) if isinstance(a, str) else a for a in record.args)
        return True


class RedactSecrets(logging.Filter):
    """Mask secrets in every record a handler writes, whoever logged it.

    Put on handlers (not loggers), so third-party loggers are covered too: httpx logs
    each request's URL at INFO, user and password included.  The format string and
    each argument are redacted on their own (uvicorn's access formatter reads the
    arguments by position), arguments that are not plain values as their text, and
    a traceback's text too.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        elif record.msg is not None and not isinstance(record.msg, int | float):
            record.msg = redact_text(str(record.msg))
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_arg(v) for k, v in record.args.items()}
        if record.exc_info and not record.exc_text:
            record.exc_text = redact_text(logging.Formatter().formatException(record.exc_info))
        return True


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact_text(value if isinstance(value, str) else str(value))
