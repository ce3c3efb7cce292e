"""Settings of ``cache-slo-exporter serve``: flags, then environment, then defaults.

Every setting is one row of :data:`OPTIONS` (flag, environment variable,
parser, default), so the precedence is the same for all of them and an error
always names where the bad value came from, the flag or variable, and what was
expected.  The SLO file (``--slo``) supplies the key types and targets the
collectors use; no connection setting is read from it.

Secrets (Redis and PostgreSQL passwords, basic-auth password, bearer token)
are held in fields that ``repr`` leaves out and are never echoed: URLs are
shown through :mod:`exporter.redaction`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict, cast
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from exporter.paths import PathClassError, PathClasses, load_classes
from exporter.redaction import SECRET_QUERY_KEYS, redact_url
from exporter.redis_urls import SENTINEL_SCHEMES, is_sentinel_url, parse_sentinel_url
from exporter.slo import SLO, by_service, load_slo

#: 9121 is the Go redis_exporter's port; ours must be able to run beside it
DEFAULT_PORT = 9150
DEFAULT_LISTEN = f"0.0.0.0:{DEFAULT_PORT}"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
#: below Prometheus' default scrape_timeout (10 s), so we answer before it gives up
DEFAULT_SCRAPE_TIMEOUT = 5.0
#: HTTP connections: open at once, and file descriptors kept free of them (Redis,
#: PostgreSQL, logs); seconds a connection has to send its request head
DEFAULT_MAX_CONNECTIONS = 256
FD_RESERVE = 64
DEFAULT_HEADER_TIMEOUT = 5.0
#: seconds between reads of a cluster's topology when nothing suggests it changed
DEFAULT_CLUSTER_REFRESH = 30.0
#: /scrape targets with background workers at once, and seconds unscraped before
#: a target's workers stop (a few missed scrapes at the usual 15-60 s interval)
DEFAULT_SCRAPE_MAX_TARGETS = 64
DEFAULT_SCRAPE_TARGET_IDLE = 300.0
REDIS_SCHEMES = ("redis", "rediss", "unix", *SENTINEL_SCHEMES)


class ConfigError(ValueError):
    """A bad setting: names the flag or environment variable and what was expected."""

    def __init__(self, where: str, expected: str, got: str | None = None) -> None:
        self.where = where
        self.expected = expected
        shown = "" if got is None else f", got {got!r}"
        super().__init__(f"{where}: expected {expected}{shown}")


# --- display ---------------------------------------------------------------------


def instance_of(url: str) -> str:
    """The ``instance`` label for a Redis URL: ``host:port`` or the socket path, no user;
    through Sentinel, the first Sentinel's ``host:port/service`` (stable across failovers)."""
    if is_sentinel_url(url):
        return parse_sentinel_url(url).instance
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    host = parts.hostname or ""
    if ":" in host:  # IPv6, bracketed as in the URL: "::1:6379" would be ambiguous
        host = f"[{host}]"
    return f"{host}:{parts.port or 6379}"


# --- value parsers (each raises ValueError with what it expected) ------------------


def parse_redis_url(text: str) -> str:
    shown = redact_url(text)
    if is_sentinel_url(text):
        try:
            parse_sentinel_url(text)
        except ValueError as exc:
            raise ValueError(f"{exc} ({shown})") from None
        return text
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        raise ValueError(
            f"a redis://, rediss:// or unix:// URL with a numeric port ({shown})"
        ) from None
    if parts.scheme not in REDIS_SCHEMES:
        raise ValueError(f"a URL whose scheme is one of {', '.join(REDIS_SCHEMES)} ({shown})")
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"unix:///path/to/redis.sock ({shown})")
    elif not parts.hostname:
        raise ValueError(f"a host in the URL, as in redis://host:6379/0 ({shown})")
    db = parts.path.strip("/")
    if parts.scheme != "unix" and db and not db.isdigit():
        raise ValueError(f"a database number as the URL path, as in /0 ({shown})")
    _check_url_options(text, shown)
    return text


def _check_url_options(text: str, shown: str) -> None:
    """Refuse query options redis-py would only reject at the first connection.

    redis-py hands every query option to its connection class as a keyword
    argument, so ``?tls=1`` or ``?socket_timeout=soon`` parse fine and then fail
    every scrape with an internal error.  Building (not connecting) one
    connection object checks names and values now.
    """
    import redis  # here, not at the top: the rule and dashboard generators never need it

    try:
        pool = redis.ConnectionPool.from_url(text)
        pool.connection_class(**pool.connection_kwargs)
    except (TypeError, ValueError, redis.RedisError):
        names = sorted({name for name, _ in parse_qsl(urlsplit(text).query, True)})
        raise ValueError(
            "only connection options redis-py takes (socket_timeout, ssl_ca_certs, ...) "
            f"with valid values in the URL query, got {', '.join(names) or 'none'} ({shown})"
        ) from None


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"HOST:PORT with a port from 1 to 65535, as in {DEFAULT_LISTEN}")
    return host.strip("[]") or "0.0.0.0", int(port)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number of seconds, as in 5 or 0.5") from None
    if not 0 < value <= 300:
        raise ValueError("a number of seconds above 0 and at most 300")
    return value


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number of seconds, 0 or more") from None
    if value < 0:
        raise ValueError("a number of seconds, 0 or more")
    return value


def _idle_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("a number of seconds, as in 300") from None
    if not 0 < value <= 86400:
        raise ValueError("a number of seconds above 0 and at most 86400 (a day)")
    return value


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) <= 0:
        raise ValueError("a whole number above 0")
    return int(text)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("true or false")


def _file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"a readable file (no file at {text!r})")
    return path


def _text(text: str) -> str:
    if not text.strip():
        raise ValueError("a non-empty value")
    return text


def _postgres_dsn(text: str) -> str:
    """A DSN libpq can parse (option names and syntax; values are checked on connect)."""
    from psycopg import Error as PsycopgError  # here: only serve needs psycopg
    from psycopg.conninfo import conninfo_to_dict

    _text(text)
    try:
        conninfo_to_dict(text)
    except PsycopgError:
        # libpq's message quotes the DSN around the fault, which may be the password
        raise ValueError(
            "a libpq connection string: key=value pairs with known option names "
            "(host, port, user, password, dbname, sslmode, ...) or a postgresql:// URL"
        ) from None
    return text


def _http_url(text: str) -> str:
    """An http(s) URL with a host (and a numeric port, if any); the error shows it
    redacted: it may carry a user and password for Prometheus' basic auth."""
    expected = f"an http:// or https:// URL with a host ({redact_url(text)})"
    try:
        parts = urlsplit(text)
        _ = parts.port
    except ValueError:
        raise ValueError(expected) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(expected)
    return text.rstrip("/")


def _link_url(text: str) -> str:
    """An http(s) URL for links every reader of the page sees: a user or password in
    it would be shown to all of them (and a browser would not log in with it)."""
    url = _http_url(text)
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        raise ValueError(
            f"an http:// or https:// URL without user or password: the page shows it to "
            f"every reader ({redact_url(text, keep_user=False)})"
        )
    return url


def _patterns(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    if not found:
        raise ValueError("comma-separated host or host:port patterns, or none")
    return found


CDN_FORMATS = ("cloudfront", "nginx")


def _cdn_logs(text: str) -> tuple[tuple[str, Path], ...]:
    """``cloudfront:DIR`` and ``nginx:FILE`` sources, comma-separated."""
    found: list[tuple[str, Path]] = []
    for part in (p.strip() for p in text.split(",")):
        kind, sep, where = part.partition(":")
        if not sep or kind not in CDN_FORMATS or not where:
            raise ValueError("comma-separated cloudfront:DIRECTORY or nginx:FILE")
        path = Path(where)
        if kind == "cloudfront" and not path.is_dir():
            raise ValueError(f"cloudfront:DIRECTORY naming a directory (none at {where!r})")
        if kind == "nginx" and not path.parent.is_dir():
            raise ValueError(f"nginx:FILE in an existing directory (none at {str(path.parent)!r})")
        # one log named twice (another spelling, a symlink) would count every line twice
        if any(os.path.realpath(path) == os.path.realpath(seen) for _, seen in found):
            raise ValueError(f"each log once ({where!r} names a log already given)")
        found.append((kind, path))
    return tuple(found)


def _state_file(text: str) -> Path:
    """A state path whose directory exists and takes new files (the state is replaced
    through a temp file beside it, so a read-only directory would fail every poll, and
    nothing would ever be counted), and that is a regular file if it exists."""
    path = Path(text)
    if not path.parent.is_dir() or path.is_dir():
        raise ValueError(f"a file path in an existing directory ({text!r})")
    if path.exists() and not path.is_file():
        raise ValueError(f"a regular file, not a FIFO or device ({text!r})")
    try:  # tried, not os.access: that says yes to root on a read-only mount
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise ValueError(
            f"a file path in a directory the exporter can write ({text!r}: {exc.strerror})"
        ) from None
    return path


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("one of debug, info, warning, error")
    return level


@dataclass(frozen=True)
class Option:
    """One setting: where it is read from, how it is parsed, its default."""

    dest: str
    flag: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    #: a secret value is never echoed in an error
    secret: bool = False
    switch: bool = False
    #: the flag may be given several times (the environment variable: comma-separated);
    #: ``parse`` reads each value and the setting is a tuple of them
    repeat: bool = False


OPTIONS: tuple[Option, ...] = (
    Option("redis_url", "--redis-url", "REDIS_URL", parse_redis_url, DEFAULT_REDIS_URL,
           "Redis to watch: redis://[user[:password]@]host:port/db, rediss:// for TLS, "
           "unix:///path.sock, or the master Sentinel names: "
           "redis+sentinel://[:password@]sentinel:26379/service[/db]"
           "[?sentinel=host2:26379&sentinel_password=...]. A Sentinel's own address "
           "(redis://sentinel:26379) reports Sentinel's view of its masters.", secret=True),
    Option("redis_password_file", "--redis-password-file", "REDIS_PASSWORD_FILE", _file, None,
           "File holding the Redis password (overrides one in the URL)."),
    Option("listen", "--listen", "CACHE_EXPORTER_LISTEN", _host_port, _host_port(DEFAULT_LISTEN),
           "HOST:PORT to serve on (9121 is left to the Go redis_exporter)."),
    Option("slo", "--slo", "CACHE_EXPORTER_SLO", _file, None,
           "SLO file (default: the packaged ADR defaults). Repeat it (the variable: "
           "comma-separated) for a status page of several services, each judged by its own "
           "file; the first file's service is the page's default and gives the collectors "
           "their key types.", repeat=True),
    Option("postgres_dsn", "--postgres-dsn", "POSTGRES_DSN", _postgres_dsn, None,
           "PostgreSQL DSN to read the buffer-cache layer from (pg_stat_database).",
           secret=True),
    Option("scrape_timeout", "--scrape-timeout", "CACHE_EXPORTER_SCRAPE_TIMEOUT", _seconds,
           DEFAULT_SCRAPE_TIMEOUT,
           "Seconds a scrape may take in all (keep it below Prometheus' scrape_timeout)."),
    Option("sample_batch_size", "--sample-batch-size", "CACHE_EXPORTER_SAMPLE_BATCH_SIZE",
           _positive_int, None, "Keys per SCAN/MEMORY USAGE batch of the keyspace sampler."),
    Option("sample_budget", "--sample-budget", "CACHE_EXPORTER_SAMPLE_BUDGET", _seconds, None,
           "Wall-clock seconds one sampling cycle may take before it stops and reports "
           "what it saw."),
    Option("sample_pause", "--sample-pause", "CACHE_EXPORTER_SAMPLE_PAUSE",
           _non_negative_seconds, None, "Seconds to pause between sampler batches."),
    Option("sample_max_keys", "--sample-max-keys", "CACHE_EXPORTER_SAMPLE_MAX_KEYS",
           _positive_int, None, "Most keys measured per sampling cycle."),
    Option("sample_interval", "--sample-interval", "CACHE_EXPORTER_SAMPLE_INTERVAL", _seconds,
           None, "Seconds between sampling cycles."),
    Option("configure_notifications", "--configure-notifications",
           "CACHE_EXPORTER_CONFIGURE_NOTIFICATIONS", _bool, False,
           "Turn on Redis keyspace notifications for evictions/expirations (CONFIG SET).",
           switch=True),
    Option("basic_auth_user", "--basic-auth-user", "CACHE_EXPORTER_BASIC_AUTH_USER", _text, None,
           "Require HTTP basic auth on /metrics and /scrape with this user."),
    Option("basic_auth_password_file", "--basic-auth-password-file",
           "CACHE_EXPORTER_BASIC_AUTH_PASSWORD_FILE", _file, None,
           "File holding the basic-auth password."),
    Option("bearer_token_file", "--bearer-token-file", "CACHE_EXPORTER_BEARER_TOKEN_FILE", _file,
           None, "Require 'Authorization: Bearer <token>' on /metrics and /scrape; the token "
           "is read from this file."),
    Option("scrape_allow", "--scrape-allow", "CACHE_EXPORTER_SCRAPE_ALLOW", _patterns, None,
           "Comma-separated host, host:port or host:port/db patterns (globs, as in "
           "cache-*.internal:6379) or socket paths that /scrape?target= may reach, judged "
           "on where the target connects; 'none' turns /scrape off. Unset: only the Redis "
           "of --redis-url."),
    Option("scrape_max_targets", "--scrape-max-targets", "CACHE_EXPORTER_SCRAPE_MAX_TARGETS",
           _positive_int, DEFAULT_SCRAPE_MAX_TARGETS,
           "/scrape targets served with per-type families (a keyspace sampler and an "
           "eviction tracker each, started on a target's first scrape) at once; beyond it a "
           "new target gets its INFO view only, counted in "
           "cache_exporter_scrape_targets_refused_total."),
    Option("scrape_target_idle", "--scrape-target-idle", "CACHE_EXPORTER_SCRAPE_TARGET_IDLE",
           _idle_seconds, DEFAULT_SCRAPE_TARGET_IDLE,
           "Seconds a /scrape target may go unscraped before its sampler and eviction "
           "tracker stop (its slot is then free)."),
    Option("cluster", "--cluster", "CACHE_EXPORTER_CLUSTER", _bool, False,
           "--redis-url is one node of a Redis Cluster: discover every node (CLUSTER NODES), "
           "serve each node's INFO and per-type sums over the masters, follow failovers.",
           switch=True),
    Option("cluster_sample_replicas", "--cluster-sample-replicas",
           "CACHE_EXPORTER_CLUSTER_SAMPLE_REPLICAS", _bool, False,
           "With --cluster: sample key counts and sizes on a healthy replica of each shard "
           "(its master when it has none), to spare the masters the SCANs.", switch=True),
    Option("cluster_refresh", "--cluster-refresh", "CACHE_EXPORTER_CLUSTER_REFRESH", _seconds,
           DEFAULT_CLUSTER_REFRESH,
           "With --cluster: seconds between topology reads (also read again at the next "
           "scrape after a node fails or changes role)."),
    Option("prometheus_url", "--prometheus-url", "PROMETHEUS_URL", _http_url, None,
           "Prometheus to query for the SLO status page (http[s]://[user:password@]host:port).",
           secret=True),
    Option("prometheus_external_url", "--prometheus-external-url",
           "PROMETHEUS_EXTERNAL_URL", _link_url, None,
           "Prometheus as the status page's readers reach it (http[s]://host[:port][/path], "
           "no credentials): its links to graphs and alerts lead there (default: "
           "--prometheus-url without its credentials).", secret=True),
    Option("alertmanager_url", "--alertmanager-url", "ALERTMANAGER_URL", _http_url, None,
           "Alertmanager the status page asks which firing alerts it holds back (silenced "
           "or inhibited) (http[s]://[user:password@]host:port).", secret=True),
    Option("max_connections", "--max-connections", "CACHE_EXPORTER_MAX_CONNECTIONS",
           _positive_int, DEFAULT_MAX_CONNECTIONS,
           "HTTP connections open at once; over it, the longest-idle one is closed. Kept "
           f"{FD_RESERVE} below the process's file-descriptor limit."),
    Option("request_header_timeout", "--request-header-timeout",
           "CACHE_EXPORTER_REQUEST_HEADER_TIMEOUT", _seconds, DEFAULT_HEADER_TIMEOUT,
           "Seconds a connection has to send a complete request head, after connecting "
           "or after its last response, before it is closed."),
    Option("cdn_log", "--cdn-log", "CACHE_EXPORTER_CDN_LOG", _cdn_logs, None,
           "CDN access logs to count layer=\"cdn\" hits and misses from, comma-separated: "
           "cloudfront:DIR (a directory CloudFront standard logs are delivered to) or "
           "nginx:FILE (a proxy_cache log in the cache_slo log_format)."),
    Option("cdn_state_file", "--cdn-state-file", "CACHE_EXPORTER_CDN_STATE_FILE", _state_file,
           None, "File where the CDN log reader keeps its positions, so a restart never "
           "counts a line twice (required with --cdn-log)."),
    Option("cdn_poll_interval", "--cdn-poll-interval", "CACHE_EXPORTER_CDN_POLL_INTERVAL",
           _seconds, 10.0, "Seconds between reads of the CDN logs."),
    Option("path_classes", "--path-classes", "CACHE_EXPORTER_PATH_CLASSES", _file, None,
           "YAML file of path classes (the type label of the CDN layer) and their "
           "Cache-Control policies (default: ADR-004's api, asset and html)."),
    Option("log_level", "--log-level", "CACHE_EXPORTER_LOG_LEVEL", _log_level, "INFO",
           "debug, info, warning or error."),
)  # fmt: skip


class SamplerOptions(TypedDict, total=False):
    """The keyspace sampler's settings that were given (others keep its defaults)."""

    batch_size: int
    cycle_budget: float
    pause: float
    max_keys: int
    interval: float


@dataclass(frozen=True)
class Settings:
    """Resolved settings; secrets are excluded from ``repr``."""

    redis_url: str = field(default=DEFAULT_REDIS_URL, repr=False)
    listen_host: str = "0.0.0.0"
    listen_port: int = DEFAULT_PORT
    #: the first SLO file (the collectors' key types; the status page's default service)
    slo: SLO = field(default_factory=load_slo, repr=False)
    #: every SLO file given, the first one included (the status page judges each
    #: service by its own); empty means ``(slo,)``
    slos: tuple[SLO, ...] = field(default=(), repr=False)
    postgres_dsn: str | None = field(default=None, repr=False)
    scrape_timeout: float = DEFAULT_SCRAPE_TIMEOUT
    #: sampler keyword arguments that were set (others keep the sampler's defaults)
    sampler: SamplerOptions = field(default_factory=lambda: SamplerOptions())
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    request_header_timeout: float = DEFAULT_HEADER_TIMEOUT
    configure_notifications: bool = False
    basic_auth_user: str | None = None
    basic_auth_password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    prometheus_url: str | None = None
    #: where the status page's links lead (None: prometheus_url without credentials)
    prometheus_external_url: str | None = None
    alertmanager_url: str | None = None
    #: host[:port] patterns /scrape may reach; None: any, (): /scrape is off
    scrape_allow: tuple[str, ...] | None = None
    log_level: str = "INFO"
    redis_password: str | None = field(default=None, repr=False)
    scrape_max_targets: int = DEFAULT_SCRAPE_MAX_TARGETS
    scrape_target_idle: float = DEFAULT_SCRAPE_TARGET_IDLE
    cluster: bool = False
    cluster_sample_replicas: bool = False
    cluster_refresh: float = DEFAULT_CLUSTER_REFRESH
    #: CDN log sources (format, path) and where their reader keeps its positions
    cdn_logs: tuple[tuple[str, Path], ...] = ()
    cdn_state_file: Path | None = None
    cdn_poll_interval: float = 10.0
    path_classes: PathClasses = field(default_factory=PathClasses)

    @property
    def service_slos(self) -> tuple[SLO, ...]:
        """Every SLO file, the first one first."""
        return self.slos or (self.slo,)

    @property
    def redis_display(self) -> str:
        """The Redis URL as logs and pages may show it."""
        return redact_url(self.redis_url)

    @property
    def instance(self) -> str:
        return instance_of(self.redis_url)

    @property
    def redis_target(self) -> tuple[str, dict[str, Any]]:
        """Credential-free URL plus ``username``/``password`` keyword arguments."""
        return split_credentials(self.redis_url, self.redis_password)

    @property
    def auth_required(self) -> bool:
        return self.basic_auth_user is not None or self.bearer_token is not None


def split_credentials(url: str, password: str | None = None) -> tuple[str, dict[str, Any]]:
    """Move user and password out of a Redis URL into client keyword arguments."""
    parts = urlsplit(url)
    kwargs: dict[str, Any] = {}
    if parts.username:
        kwargs["username"] = unquote(parts.username)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    in_query = [v for k, v in pairs if k == "password"]
    if in_query:  # redis-py takes ?password= too; keep it out of the URL like the others
        kwargs["password"] = in_query[-1]
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    if password is not None:
        kwargs["password"] = password
    netloc = parts.netloc.rsplit("@", 1)[-1]
    query = urlencode([(k, v) for k, v in pairs if k.lower() not in SECRET_QUERY_KEYS])
    # not urlunsplit: with an empty host it writes unix:/path, which redis-py refuses
    url = f"{parts.scheme}://{netloc}{parts.path}" + (f"?{query}" if query else "")
    return url + (f"#{parts.fragment}" if parts.fragment else ""), kwargs


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add one flag per :data:`OPTIONS` row; values stay strings until resolved."""
    parser.epilog = (
        "Each setting is taken from its flag, else its environment variable, else its "
        "default. The SLO file supplies key types and targets, no connection setting. "
        "Secrets are read from files or the environment and never printed."
    )
    for opt in OPTIONS:
        default = opt.default
        if isinstance(default, tuple):
            default = ":".join(str(part) for part in default)
        shown = "" if default in (None, False) else f"; default {default}"
        help_text = f"{opt.help} [env {opt.env}{shown}]"
        if opt.switch:
            parser.add_argument(opt.flag, dest=opt.dest, action="store_const", const="true",
                                default=None, help=help_text)  # fmt: skip
        elif opt.repeat:
            parser.add_argument(opt.flag, dest=opt.dest, action="append", default=None,
                                help=help_text)  # fmt: skip
        else:
            parser.add_argument(opt.flag, dest=opt.dest, default=None, help=help_text)


def _read_secret(path: Path, where: str) -> str:
    try:
        value = path.read_text("utf-8").strip()
    except OSError as exc:
        raise ConfigError(where, f"a readable file ({exc.strerror})", str(path)) from None
    if not value:
        raise ConfigError(where, "a file holding a non-empty secret", str(path))
    return value


def _parsed(opt: Option, raw: str, source: str) -> Any:
    try:
        return opt.parse(raw)
    except ValueError as exc:
        shown = None if opt.secret else raw
        raise ConfigError(source, str(exc), shown) from None


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from flags, then environment variables, then defaults; refuse bad values."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    for opt in OPTIONS:
        raw = getattr(args, opt.dest, None)
        source = opt.flag
        if raw is None and env.get(opt.env):
            raw, source = env[opt.env], f"environment variable {opt.env}"
        where[opt.dest] = source
        if raw is None:
            values[opt.dest] = opt.default
            continue
        if not opt.repeat:
            values[opt.dest] = _parsed(opt, raw, source)
            continue
        items = raw if isinstance(raw, list) else [p.strip() for p in raw.split(",")]
        if not all(items):
            raise ConfigError(source, "comma-separated values, none empty", raw)
        values[opt.dest] = tuple(_parsed(opt, item, source) for item in items)

    redis_password = None
    if values["redis_password_file"] is not None:
        redis_password = _read_secret(values["redis_password_file"], where["redis_password_file"])
    basic_password = None
    if (values["basic_auth_user"] is None) != (values["basic_auth_password_file"] is None):
        raise ConfigError("--basic-auth-user / --basic-auth-password-file", "both set, or neither")
    if values["basic_auth_password_file"] is not None:
        basic_password = _read_secret(
            values["basic_auth_password_file"], where["basic_auth_password_file"]
        )
    bearer = None
    if values["bearer_token_file"] is not None:
        if values["basic_auth_user"] is not None:
            raise ConfigError(
                "--bearer-token-file", "not to be combined with --basic-auth-user (pick one)"
            )
        bearer = _read_secret(values["bearer_token_file"], where["bearer_token_file"])

    if values["cluster_sample_replicas"] and not values["cluster"]:
        raise ConfigError(where["cluster_sample_replicas"], "--cluster as well (it picks "
                          "which cluster nodes to sample)")  # fmt: skip
    sampler_keys = ("batch_size", "budget", "pause", "max_keys", "interval")
    sampler_args = {"budget": "cycle_budget"}
    sampler = cast(
        SamplerOptions,
        {
            sampler_args.get(key, key): values[f"sample_{key}"]
            for key in sampler_keys
            if values[f"sample_{key}"] is not None
        },
    )
    if values["cdn_log"] and values["cdn_state_file"] is None:
        raise ConfigError("--cdn-state-file", "a state file when --cdn-log is set")
    try:
        path_classes = load_classes(values["path_classes"])
    except PathClassError as exc:
        raise ConfigError(where["path_classes"], str(exc)) from None
    host, port = values["listen"]
    # every file is read before any is used; two files of one service are refused
    slos = tuple(load_slo(path) for path in values["slo"] or (None,))
    by_service(slos)
    return Settings(
        redis_url=values["redis_url"],
        listen_host=host,
        listen_port=port,
        slo=slos[0],
        slos=slos,
        postgres_dsn=values["postgres_dsn"],
        scrape_timeout=values["scrape_timeout"],
        sampler=sampler,
        max_connections=values["max_connections"],
        request_header_timeout=values["request_header_timeout"],
        configure_notifications=values["configure_notifications"],
        basic_auth_user=values["basic_auth_user"],
        basic_auth_password=basic_password,
        bearer_token=bearer,
        prometheus_url=values["prometheus_url"],
        prometheus_external_url=values["prometheus_external_url"],
        alertmanager_url=values["alertmanager_url"],
        scrape_allow=values["scrape_allow"],
        log_level=values["log_level"],
        redis_password=redis_password,
        scrape_max_targets=values["scrape_max_targets"],
        scrape_target_idle=values["scrape_target_idle"],
        cluster=values["cluster"],
        cluster_sample_replicas=values["cluster_sample_replicas"],
        cluster_refresh=values["cluster_refresh"],
        cdn_logs=values["cdn_log"] or (),
        cdn_state_file=values["cdn_state_file"],
        cdn_poll_interval=values["cdn_poll_interval"],
        path_classes=path_classes,
    )
