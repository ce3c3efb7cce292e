"""``redis+sentinel://`` URLs: where the Sentinels are and which master to ask for.

redis-py connects through Sentinel (``redis.sentinel.Sentinel(...).master_for``)
but parses no URL for it, so the client, the collectors and the settings share
this one reading of the form::

    redis+sentinel://[user:password@]host[:port]/service[/db][?sentinel=host2:port&...]
    rediss+sentinel://...                     (TLS to the master and its replicas)

The first Sentinel is the URL's host (port 26379 by default) and further ones are
``sentinel=`` query options (a list of hosts in the netloc would not survive
``urlsplit``, so neither redaction nor redis-py could read it); ``service`` is the
master name Sentinel monitors; ``user:password@`` and ``?password=`` are the
master's credentials, ``?sentinel_password=`` (and ``sentinel_username``) the
Sentinels'.  Other query options are refused (one clear error now rather than a
connection option that means something else later).

A leaf: imports nothing from the package, and not redis-py either (callers build
the ``Sentinel`` themselves, sync or asyncio).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
DEFAULT_SENTINEL_PORT = 26379
FORM = "redis+sentinel://[user:password@]host[:port]/service[/db][?sentinel=host2:port]"
#: the longest service name taken (it is part of the ``instance`` label and of log lines)
MAX_SERVICE = 256
#: query options this module reads (the rest are redis-py's)
_OURS = frozenset({"sentinel", "sentinel_password", "sentinel_username", "password"})


def is_sentinel_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in SENTINEL_SCHEMES


@dataclass(frozen=True)
class SentinelURL:
    """What a ``redis+sentinel://`` URL says (``repr`` leaves the secrets out)."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    ssl: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sentinel_username: str | None = None
    sentinel_password: str | None = field(default=None, repr=False)

    @property
    def instance(self) -> str:
        """A stable ``instance`` label: the first Sentinel and the service (the master's
        own address changes with every failover)."""
        host, port = self.sentinels[0]
        shown = f"[{host}]" if ":" in host else host
        return f"{shown}:{port}/{self.service}"

    def master_kwargs(self) -> dict[str, object]:
        """Keyword arguments for ``Sentinel.master_for`` (db, credentials, TLS)."""
        kwargs: dict[str, object] = {"db": self.db}
        if self.username is not None:
            kwargs["username"] = self.username
        if self.password is not None:
            kwargs["password"] = self.password
        if self.ssl:
            kwargs["ssl"] = True
        return kwargs

    def sentinel_kwargs(self) -> dict[str, object]:
        """``sentinel_kwargs`` for ``Sentinel``: the Sentinels' own credentials."""
        kwargs: dict[str, object] = {}
        if self.sentinel_username is not None:
            kwargs["username"] = self.sentinel_username
        if self.sentinel_password is not None:
            kwargs["password"] = self.sentinel_password
        return kwargs


def _port(parts: SplitResult, expected: str) -> int:
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # ":0" used to become 26379 unsaid
        raise ValueError(expected)
    return port or DEFAULT_SENTINEL_PORT


def _host_port(text: str, where: str) -> tuple[str, int]:
    parts = urlsplit(f"//{text}")
    if "@" in parts.netloc:  # its credentials would be dropped unsaid, and logged
        raise ValueError(f"{where}: a host[:port] without credentials (use sentinel_password=)")
    if parts.path or parts.query or parts.fragment:
        raise ValueError(f"{where}: a host[:port] alone")
    port = _port(parts, f"{where}: a host[:port] with a port from 1 to 65535")
    if not parts.hostname:
        raise ValueError(f"{where}: a host, as in {FORM}")
    return parts.hostname, port


def parse_sentinel_url(url: str) -> SentinelURL:
    """Read a ``redis+sentinel://`` URL; ``ValueError`` says what was expected (and never
    repeats the URL: it may hold a password; callers show it redacted)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"{FORM} with a numeric port") from None
    port = _port(parts, f"{FORM} with a numeric port from 1 to 65535")
    if parts.scheme.lower() not in SENTINEL_SCHEMES:
        raise ValueError(f"a URL whose scheme is one of {', '.join(SENTINEL_SCHEMES)}")
    if not parts.hostname:
        raise ValueError(f"a Sentinel host, as in {FORM}")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2:
        raise ValueError(f"the master's service name as the URL path, as in {FORM}")
    if len(path) == 2 and not (path[1].isascii() and path[1].isdigit()):  # not "²"
        raise ValueError(f"a database number after the service name, as in {FORM}")
    if len(path[0]) > MAX_SERVICE or not path[0].isprintable():
        raise ValueError(f"a service name of printable characters, at most {MAX_SERVICE}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({k for k, _ in query} - _OURS)
    if unknown:
        raise ValueError(
            f"only {', '.join(sorted(_OURS))} as query options, got {', '.join(unknown)}"
        )
    sentinels = [(parts.hostname, port)]
    sentinels += [_host_port(v, "sentinel=") for k, v in query if k == "sentinel"]
    password = next((v for k, v in reversed(query) if k == "password"), None)
    if parts.password is not None:
        password = unquote(parts.password)
    return SentinelURL(
        sentinels=tuple(sentinels),
        service=path[0],
        db=int(path[1]) if len(path) == 2 else 0,
        ssl=parts.scheme.lower() == "rediss+sentinel",
        username=unquote(parts.username) if parts.username else None,
        password=password,
        sentinel_username=next((v for k, v in query if k == "sentinel_username"), None),
        sentinel_password=next((v for k, v in query if k == "sentinel_password"), None),
    )
