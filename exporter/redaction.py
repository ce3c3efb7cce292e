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
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

MASK = "***"
#: query option names that hold secrets (a connection URL drops them: see
#: :func:`exporter.config.split_credentials`)
SECRET_QUERY_KEYS = frozenset({"password", "pass", "passwd", "pwd", "token", "secret", "auth"})
#: parts of query option names that mark them as secrets (``sslpassword``, ``auth_token``)
_SECRET_PARTS = ("pass", "pwd", "secret", "token")
_DSN_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
UNPARSABLE = "<unparsable URL>"


def is_secret_query_key(name: str) -> bool:
    """A query option that may hold a secret (``sslpassword``, ``auth_token``, ...)."""
    lowered = name.lower()
    return lowered in SECRET_QUERY_KEYS or any(part in lowered for part in _SECRET_PARTS)


def redact_url(url: str) -> str:
    """``redis://user:secret@host:6379/0?password=x`` -> ``redis://user:***@host:6379/0?password=***``."""
    try:
        parts = urlsplit(url)
        _ = parts.port
    except ValueError:
        return UNPARSABLE
    netloc = parts.netloc
    if parts.password is not None:
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
