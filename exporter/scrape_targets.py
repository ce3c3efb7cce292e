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

The connection URL is written back from the checked values, so every value must
survive that round trip: a host is a host name or an IP address (a percent-encoded
``#``, ``?``, ``/`` or ``@`` in it made ``redis://evil%23.cache.internal`` pass
``*.cache.internal`` and connect to ``evil``), a socket path is absolute with no
``.`` or ``..`` segment (``/run/redis/*`` allowed ``/run/redis/../../tmp/x.sock``),
and :func:`parse_target` re-reads the URL it built and refuses any difference.
An IPv4 pattern (``10.0.*``) matches IPv4 addresses only, never a name that starts
like one (``10.0.0.1.attacker.example``), and a link-local address (where cloud
metadata services answer) is reached only through a pattern naming it without a glob.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

#: query parameters a target may carry: the database and a password (moved out of the URL)
TARGET_QUERY = ("db", "password")
DEFAULT_PORT = 6379
#: SELECT takes a C int
MAX_DB = 2**31 - 1
#: a unix socket path fits sockaddr_un's 108 bytes with its NUL
MAX_SOCKET_PATH = 107
_HOST_NAME = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_-]{1,63})*\.?", re.ASCII
)
#: an IPv4 pattern's host: digits, dots and globs (at least one digit)
_IPV4_PATTERN = re.compile(r"(?=.*[0-9])[0-9.*?]+", re.ASCII)
#: cloud metadata addresses outside the link-local ranges (AWS' IPv6, Alibaba's)
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


#: NAT64's well-known prefix: its addresses reach the IPv4 address in their last 32 bits
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _reached(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None,
) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a connection to ``ip`` reaches: an IPv4-mapped (``::ffff:a.b.c.d``)
    or NAT64 (``64:ff9b::/96``) address reaches the IPv4 address inside it."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def _check_host(host: str) -> str:
    """``host`` if it is a host name or an IP address written in full, else ValueError."""
    if _ip(host) is not None:
        return host
    try:  # 127.1, 0x7f000001, 2130706433, 017.0.0.1: the resolver reads them as IPv4
        socket.inet_aton(host)
    except OSError:
        pass
    else:
        raise ValueError("an IPv4 address written in full, as in 10.0.0.1")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError("a host name (letters, digits, '-', '_', '.') or an IP address")
    return host


def _check_socket_path(path: str) -> str:
    if (
        not path.startswith("/")
        or posixpath.normpath(path) != path
        or len(path.encode("utf-8", "surrogateescape")) > MAX_SOCKET_PATH
        or not path.isprintable()
    ):
        raise ValueError(
            "unix:///absolute/path.sock without . or .. segments, at most "
            f"{MAX_SOCKET_PATH} bytes"
        )
    return path


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
    if not 0 <= db <= MAX_DB:
        raise ValueError(f"a database number from 0 to {MAX_DB}")
    if parts.scheme == "unix":
        path = _check_socket_path(str(kwargs.get("path", "")))
        target = Target("unix", "", 0, path, db, kwargs.get("username"), password)
    else:
        target = Target(
            parts.scheme,
            _check_host(str(kwargs.get("host", "")).lower()),
            int(kwargs.get("port", DEFAULT_PORT)),
            "",
            db,
            kwargs.get("username"),
            password,
        )
    # what connects is target.url read again: it must say exactly what was checked
    again = parse_url(target.url)  # type: ignore[no-untyped-call]
    if target.path:
        said: tuple[object, ...] = (again.get("path", ""),)
        checked: tuple[object, ...] = (target.path,)
    else:
        said = (again.get("host", ""), int(again.get("port", DEFAULT_PORT)))
        checked = (target.host, target.port)
    if said != checked or int(again.get("db", 0)) != target.db:
        raise ValueError("a plain host, port and database (the target did not read back)")
    return target


def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` as in the shell; everything else literal (``[::1]`` is a host)."""
    return re.compile(re.escape(pattern).replace(r"\*", ".*").replace(r"\?", "."))


def allowed(target: Target, patterns: tuple[str, ...]) -> bool:
    """Whether a pattern names ``target``: ``host``, ``host:port`` or ``host:port/db``
    (``*`` and ``?`` globs, case-insensitive; IPv6 bracketed as in ``[::1]:6379``), or a
    socket path (every database behind it).  A pattern without a port matches any
    port, one without ``/db`` any database.

    Host names are matched as written in the target, before any DNS lookup.  A pattern
    whose host is digits, dots and globs matches IPv4 addresses only; a link-local or
    metadata address needs a pattern whose host has no glob.
    """
    address = target.address.lower()
    host = address if target.path else address.rpartition(":")[0]
    ip = _ip(target.host) if not target.path else None
    reached = _reached(ip)
    guarded = reached is not None and (reached.is_link_local or reached in _METADATA)
    for raw in patterns:
        pattern = raw.lower()
        if not target.path and not pattern.startswith("/"):
            pattern_host = _pattern_host(pattern)
            if _IPV4_PATTERN.fullmatch(pattern_host) and not isinstance(
                ip, ipaddress.IPv4Address
            ):
                continue
            if guarded and ("*" in pattern_host or "?" in pattern_host):
                continue
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


def _pattern_host(pattern: str) -> str:
    """The host part of a ``host[:port][/db]`` pattern (IPv6 without its brackets)."""
    pattern = pattern.partition("/")[0]
    if pattern.startswith("["):
        return pattern[1:].partition("]")[0]
    return pattern.partition(":")[0]
