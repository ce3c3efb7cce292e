"""Which Redis ``/scrape?target=`` may reach: deny by default, checked on what connects.

``/scrape`` makes the exporter open a connection wherever a request says, so it
reaches only what the operator named: the configured Redis unless
``--scrape-allow`` lists patterns, nothing with ``--scrape-allow none``.

A target is judged by what redis-py would connect to once every part of the URL
and every query parameter is applied (``redis://127.0.0.1/0?port=7000`` goes to
port 7000), and the connection is then built from those checked values only,
never from the text.  A target is scheme, user, password, host, port and
database: query options other than ``db`` and ``password`` are refused, since
they could redirect the connection (``host``, ``port``, ``path``) or change how
long and how it is held (timeouts, TLS files, pool sizes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

#: query parameters a target may carry: the database and a password (moved out of the URL)
TARGET_QUERY = ("db", "password")
DEFAULT_PORT = 6379


@dataclass(frozen=True)
class Target:
    """Where a ``/scrape`` target connects, as redis-py would read its URL."""

    scheme: str
    host: str  # lowercased; "" for a unix socket
    port: int
    path: str  # the socket path of unix://, else ""
    db: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 bracketed) or the socket path: the ``instance`` label."""
        if self.path:
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        """The URL to connect to, without credentials (pass those as keyword arguments)."""
        if self.path:
            return f"unix://{self.path}?db={self.db}"
        return f"{self.scheme}://{self.address}/{self.db}"

    def credentials(self) -> dict[str, str]:
        found = {"username": self.username, "password": self.password}
        return {k: v for k, v in found.items() if v is not None}


def parse_target(text: str) -> Target:
    """The checked target of a URL; ``ValueError`` saying what was expected (never
    echoing the URL: it may hold a password)."""
    from redis.connection import parse_url  # here: the rule generators never need redis

    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):  # redis+sentinel: --redis-url only
        raise ValueError("a redis://, rediss:// or unix:// URL (Sentinel: use --redis-url)")
    names = [name for name, _ in parse_qsl(parts.query, keep_blank_values=True)]
    other = sorted({n for n in names if n not in TARGET_QUERY})
    if other:
        raise ValueError(
            f"no connection options in the URL but {' and '.join(TARGET_QUERY)} "
            f"(got {', '.join(other)})"
        )
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"each query parameter once (got {', '.join(repeated)} repeated)")
    try:
        kwargs = parse_url(text)  # type: ignore[no-untyped-call]
    except ValueError:
        raise ValueError("a database number in ?db=") from None
    password = kwargs.get("password")  # the URL's own wins over ?password=
    db = int(kwargs.get("db", 0))
    if db < 0:
        raise ValueError("a database number of 0 or more")
    if parts.scheme == "unix":
        path = str(kwargs.get("path", ""))
        return Target("unix", "", 0, path, db, kwargs.get("username"), password)
    return Target(
        parts.scheme,
        str(kwargs.get("host", "")).lower(),
        int(kwargs.get("port", DEFAULT_PORT)),
        "",
        db,
        kwargs.get("username"),
        password,
    )


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` as in the shell; everything else literal (``[::1]`` is a host)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


def allowed(target: Target, patterns: tuple[str, ...]) -> bool:
    """Whether a pattern names ``target``: ``host``, ``host:port`` or ``host:port/db``
    (``*`` and ``?`` globs, case-insensitive; IPv6 bracketed as in ``[::1]:6379``), or a
    socket path (every database behind it).  A pattern without a port matches any
    port, one without ``/db`` any database.

    Host names are matched as written in the target, before any DNS lookup.
    """
    address = target.address.lower()
    host = address if target.path else address.rpartition(":")[0]
    for raw in patterns:
        pattern = raw.lower()
        if pattern.startswith("/"):
            if target.path and _glob(pattern).fullmatch(address):
                return True
            continue
        if target.path:
            continue
        pattern, slash, db = pattern.partition("/")
        if slash and not _glob(db).fullmatch(str(target.db)):
            continue
        port_part = pattern.rpartition("]")[2] if pattern.startswith("[") else pattern
        if _glob(pattern).fullmatch(address if ":" in port_part else host):
            return True
    return False
