"""The INFO collector: Redis' own counters, read fresh on every scrape.

One ``INFO ALL`` round trip per scrape, bounded by socket timeouts and by a
wall-clock deadline (:mod:`~exporter.collectors._deadline`: a reply that
trickles in, or a host name that never resolves, outlasts any socket timeout),
so a down, stalled or crawling Redis gives ``redis_up 0`` and the error class
quickly instead of hanging the scrape.  What becomes a metric is the tables in
:mod:`exporter.metrics`; this module only converts values and emits.

Whatever answers on the port, ``redis_up`` and the self-metrics are served:

* the deadline covers the round trip, the parse and building the families; the
  reply is read through :class:`CappedParser` (at most :data:`MAX_INFO_BYTES`,
  refused from its length header before it is read);
* a field that does not parse is skipped and counted
  (``cache_exporter_info_fields_skipped_total``), never a failed scrape;
* every family keyed by a name Redis returns is capped (``MAX_COMMANDS``,
  ``MAX_DATABASES``, ``MAX_ERROR_PREFIXES``, ``MAX_QUANTILES``): the first names
  in a stable order keep their series, the rest are summed into one overflow
  series (``cmd="other"``, ``db="other"``, ``err="OTHER"``) where a sum means
  something and dropped where not (percentiles, average TTLs), and
  ``cache_exporter_series_dropped_total{family}`` counts them.  So the output,
  and the time to render it, are bounded (a few thousand series at most).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import redis
from prometheus_client.core import (
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample
from redis.backoff import NoBackoff
from redis.retry import Retry

from exporter import metrics
from exporter.collectors import sentinel
from exporter.collectors._deadline import Deadline, DeadlineExceeded
from exporter.collectors._redis import (  # the reply caps live beside the pools that use them
    MAX_ARRAY_ITEMS as MAX_ARRAY_ITEMS,
)
from exporter.collectors._redis import MAX_INFO_BYTES as MAX_INFO_BYTES
from exporter.collectors._redis import MAX_LINE_BYTES as MAX_LINE_BYTES
from exporter.collectors._redis import MAX_REPLY_ITEMS as MAX_REPLY_ITEMS
from exporter.collectors._redis import CappedParser as CappedParser
from exporter.collectors._redis import ReplyTooLarge as ReplyTooLarge
from exporter.collectors._redis import sentinel_pool
from exporter.collectors.health import RepeatFilter
from exporter.collectors.health import error_class as error_class
from exporter.collectors.info_parser import (
    InfoParseError,
    Records,
    RedisInfo,
    label_text,
    number,
    pairs,
    parse_info,
)
from exporter.metrics import InfoUnit
from exporter.redis_urls import is_sentinel_url

log = logging.getLogger(__name__)

T = TypeVar("T")


def convert(raw: str | float, unit: InfoUnit) -> float | None:
    """The one INFO value conversion; ``None`` for a value that is not a finite number."""
    if isinstance(raw, float):
        value: float | None = raw
    elif unit == "status":
        return 1.0 if raw.strip() == "ok" else 0.0
    else:
        value = number(raw.rstrip("%"))
    if value is None or not math.isfinite(value):
        return None
    if unit == "usec":
        return value / 1e6
    if unit == "msec":
        return value / 1e3
    return value


# --- caps: every family keyed by a name Redis returns has a bounded label set --------
#: label values per family, the overflow series included (Redis 7.0 has ~240 commands
#: and ~150 subcommands, but commandstats lists only those called since the last reset)
MAX_COMMANDS = 200
#: ``databases`` defaults to 16
MAX_DATABASES = 64
#: Redis 7 stops tracking new error prefixes past 128; Redis 6.2 does not, and a
#: script can make up prefixes (``redis.error_reply``), so we cap the label set too.
MAX_ERROR_PREFIXES = 128
#: quantiles per command (``latency-tracking-info-percentiles`` defaults to 3)
MAX_QUANTILES = 16
#: a name longer than this (or not printable) never becomes a label value
MAX_NAME_CHARS = 100
#: longest value of a redis_instance_info label (longer ones are cut)
MAX_INFO_LABEL_CHARS = 100
#: replicas reported per master (``slaveN`` lines; offsets and lags do not sum, so
#: past the cap they are dropped and counted)
MAX_REPLICAS = 64
OVERFLOW_CMD = "other"
OVERFLOW_DB = "other"
OVERFLOW_ERROR_PREFIX = "OTHER"


@dataclass
class Tally:
    """What one INFO reply lost on its way to metrics: fields skipped (did not parse)
    and series dropped per family (left out, or folded into its overflow series)."""

    skipped: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


def split_capped(
    names: Iterable[str], cap: int, overflow: str, key: Callable[[str], Any] | None = None
) -> tuple[list[str], list[str]]:
    """``(kept, rest)``: at most ``cap`` label values with the overflow series counted.

    Names are kept in ``key`` order (stable from scrape to scrape: a name that was
    kept stays kept while the set only grows, so a summed overflow never goes down);
    names that cannot be label values always go to the rest.  When nothing is left
    over, all ``cap`` values are names."""
    every = list(names)
    valid = [n for n in every if 0 < len(n) <= MAX_NAME_CHARS and n.isprintable() and n != overflow]
    valid.sort(key=key)
    room = cap if len(valid) == len(every) and len(valid) <= cap else cap - 1
    kept = valid[:room]
    if len(kept) == len(every):
        return kept, []
    chosen = set(kept)
    return kept, [name for name in every if name not in chosen]


def _db_number(name: str) -> tuple[int, str]:
    return (int(name[2:]), name) if name[2:].isdigit() else (1 << 62, name)


def bounded_errorstats(errorstats: dict[str, float]) -> dict[str, float]:
    """At most :data:`MAX_ERROR_PREFIXES` label values: the first prefixes in sorted
    order keep their own series, the rest are summed under ``OTHER``."""
    kept, rest = split_capped(errorstats, MAX_ERROR_PREFIXES, OVERFLOW_ERROR_PREFIX)
    bounded = {name: errorstats[name] for name in kept}
    if rest:
        bounded[OVERFLOW_ERROR_PREFIX] = math.fsum(errorstats[name] for name in rest)
    return bounded


def _quantile(percentile: str) -> tuple[float, str]:
    """``p99.9`` -> ``(0.999, "0.999")`` (the parser has checked the name)."""
    value = float(percentile[1:]) / 100
    return value, f"{value:g}"


def _latency_summary(info: RedisInfo, instance: str, tally: Tally) -> SummaryMetricFamily:
    """latencystats quantiles, with commandstats calls/time as the summary's count/sum.

    Percentiles cannot be summed: commands beyond the cap are dropped, not folded."""
    spec = metrics.REDIS_LATENCY_PERCENTILES
    label_names = [name for name in spec.labels if name != "quantile"]
    family = SummaryMetricFamily(spec.family, spec.help, labels=label_names)
    latency = info.latencystats
    kept, rest = split_capped(latency, MAX_COMMANDS, OVERFLOW_CMD)
    tally.dropped[spec.name] += sum(latency.width(cmd) + 2 for cmd in rest)
    for cmd in kept:
        percentiles = latency[cmd]
        if not percentiles:
            continue
        labels = dict(zip(label_names, (instance, cmd), strict=True))
        by_label: dict[str, float] = {}  # p99 and p99.0 are one quantile
        for _, label, usec in sorted(
            (*_quantile(name), usec) for name, usec in percentiles.items()
        ):
            by_label.setdefault(label, usec)
        if len(by_label) > MAX_QUANTILES:
            tally.dropped[spec.name] += len(by_label) - MAX_QUANTILES
        for label, usec in list(by_label.items())[:MAX_QUANTILES]:
            family.samples.append(Sample(spec.name, {**labels, "quantile": label}, usec / 1e6))
        stats = info.commandstats.get(cmd, {})
        family.samples.append(Sample(f"{spec.name}_count", labels, stats.get("calls", 0.0)))
        family.samples.append(Sample(f"{spec.name}_sum", labels, stats.get("usec", 0.0) / 1e6))
    return family


def _record_families(
    records: Records,
    table: tuple[metrics.InfoField, ...],
    instance: str,
    overflow: str,
    cap: int,
    tally: Tally,
    *,
    key: Callable[[str], Any] | None = None,
    summable: Callable[[metrics.InfoField], bool] = lambda item: True,
    excess: int = 0,
) -> Iterator[Metric]:
    """One family per table row over capped names; the rest summed into ``overflow``
    for rows where a sum means something, else dropped.  ``excess`` lines the parser
    did not keep count as dropped in every family (one each)."""
    kept, rest = split_capped(records, cap, overflow, key)
    folded = records.fold(rest, [item.field for item in table]) if rest else {}
    for item in table:
        family = item.spec.new_family()
        for name in kept:
            stats = records[name]
            if item.field in stats:
                family.add_metric([instance, name], convert(stats[item.field], item.unit) or 0.0)
        total, lines = folded.get(item.field, (0.0, 0))
        tally.dropped[item.spec.name] += lines + excess
        if lines and summable(item):
            family.add_metric([instance, overflow], convert(total, item.unit) or 0.0)
        if family.samples:
            yield family


def _slave_number(name: str) -> tuple[int, str]:
    return (int(name[5:]), name) if name[5:].isdigit() else (1 << 62, name)


def replication_metrics(info: RedisInfo, instance: str, tally: Tally) -> Iterator[Metric]:
    """The labelled replication families, as the Go exporter labels them: a replica's
    link to its master (``master_host``, ``master_port``) and a master's replicas
    (``slave_ip``, ``slave_port``, ``slave_state``; at most :data:`MAX_REPLICAS`)."""
    replication = info.fields.get("replication", {})
    if replication.get("role") == "slave":
        link = [
            instance,
            label_text(replication.get("master_host", "")),
            label_text(replication.get("master_port", "")),
        ]
        for item in metrics.REDIS_REPLICA_FIELDS:
            raw = replication.get(item.field)
            if raw is None:
                continue
            value = (
                float(raw.strip() == "up") if item.field == "master_link_status" else number(raw)
            )
            if value is None:
                tally.skipped += 1
                continue
            family = item.spec.new_family()
            family.add_metric(link, value)
            yield family
        read_only = replication.get("slave_read_only", replication.get("replica_read_only", ""))
        family = metrics.REDIS_SLAVE_INFO.new_family()
        family.add_metric([*link, label_text(read_only)], 1.0)
        yield family
    lines = sorted(
        (name for name in replication if name.startswith("slave") and name[5:].isdigit()),
        key=_slave_number,
    )
    offsets = metrics.REDIS_CONNECTED_SLAVE_OFFSET.new_family()
    lags = metrics.REDIS_CONNECTED_SLAVE_LAG.new_family()
    for name in lines[:MAX_REPLICAS]:
        record = pairs(replication[name])
        labels = [instance, *(label_text(record.get(k, "")) for k in ("ip", "port", "state"))]
        offset = number(record.get("offset", ""))
        if offset is None:
            tally.skipped += 1
            continue
        offsets.add_metric(labels, offset)
        lag = number(record.get("lag", ""))  # absent before Redis 3.0
        if lag is not None:
            lags.add_metric(labels, lag)
    for spec in (metrics.REDIS_CONNECTED_SLAVE_OFFSET, metrics.REDIS_CONNECTED_SLAVE_LAG):
        tally.dropped[spec.name] += max(0, len(lines) - MAX_REPLICAS)
    if offsets.samples:
        yield offsets
    if lags.samples:
        yield lags


def field_metrics(
    fields: dict[str, str], table: Iterable[metrics.InfoField], instance: str, tally: Tally
) -> Iterator[Metric]:
    """One ``{instance}`` family per table row present in ``fields`` (CLUSTER INFO,
    CONFIG GET); a value that does not parse is skipped and counted."""
    for item in table:
        raw = fields.get(item.field)
        value = None if raw is None else convert(raw, item.unit)
        if value is None:
            tally.skipped += raw is not None
            continue
        family = item.spec.new_family()
        family.add_metric([instance], value)
        yield family


def info_metrics(info: RedisInfo, instance: str, tally: Tally | None = None) -> Iterator[Metric]:
    """Metric families for one parsed INFO reply; fields this server lacks are skipped.

    Every family keyed by a name Redis returns is capped (``MAX_*``); ``tally``
    receives what was skipped and dropped on the way."""
    tally = Tally() if tally is None else tally
    for section, fields in metrics.REDIS_INFO_FIELDS.items():
        for item in fields:
            raw = info.get(section, item.field)
            value = None if raw is None else convert(raw, item.unit)
            if value is None:
                tally.skipped += raw is not None  # present, but not a number
                continue
            family = item.spec.new_family()
            family.add_metric([instance], value)
            yield family

    yield from _record_families(
        info.commandstats,
        metrics.REDIS_COMMANDSTATS,
        instance,
        OVERFLOW_CMD,
        MAX_COMMANDS,
        tally,
        excess=info.excess.get("commandstats", 0),
    )

    if info.latencystats:
        yield _latency_summary(info, instance, tally)
    tally.dropped[metrics.REDIS_LATENCY_PERCENTILES.name] += info.excess.get("latencystats", 0)

    if info.errorstats:
        family = metrics.REDIS_ERRORS.new_family()
        bounded = bounded_errorstats(info.errorstats)
        for prefix, count in bounded.items():
            family.add_metric([instance, prefix], count)
        if OVERFLOW_ERROR_PREFIX in bounded:
            tally.dropped[metrics.REDIS_ERRORS.name] += len(info.errorstats) - len(bounded) + 1
        yield family
    tally.dropped[metrics.REDIS_ERRORS.name] += info.excess.get("errorstats", 0)

    yield from _record_families(
        info.keyspace,
        metrics.REDIS_KEYSPACE,
        instance,
        OVERFLOW_DB,
        MAX_DATABASES,
        tally,
        key=_db_number,
        summable=lambda item: item.unit == "number",  # keys, expires; not avg_ttl
        excess=info.excess.get("keyspace", 0),
    )

    family = metrics.REDIS_INSTANCE_INFO.new_family()
    details = [
        next((v for s in info.fields.values() if (v := s.get(name)) is not None), "")[
            :MAX_INFO_LABEL_CHARS
        ]
        for name in metrics.REDIS_INSTANCE_INFO_FIELDS
    ]
    family.add_metric([instance, *details], 1.0)
    yield from replication_metrics(info, instance, tally)
    tally.skipped += info.skipped  # lines, and record lines read (and found bad) above
    yield family


def _text_reply(raw: Any, command: str) -> str:
    if isinstance(raw, bytes):
        return raw.decode("utf-8", "replace")
    if isinstance(raw, str):
        return raw
    raise InfoParseError(f"{command}: expected text, got {type(raw).__name__}")


#: CLUSTER INFO lines read at most (Redis 7 sends about 30)
MAX_CLUSTER_INFO_LINES = 256


def cluster_info_fields(text: str) -> dict[str, str]:
    """``field: value`` of a ``CLUSTER INFO`` reply; lines that are not ``name:value``
    are ignored, and only the first :data:`MAX_CLUSTER_INFO_LINES` are read."""
    found: dict[str, str] = {}
    for line in text.split("\n", MAX_CLUSTER_INFO_LINES)[:MAX_CLUSTER_INFO_LINES]:
        name, sep, value = line.partition(":")
        if sep and name.strip():
            found[name.strip()] = value.strip()
    return found


def redis_client(url: str, timeout: float, redis_kwargs: dict[str, Any] | None = None) -> Any:
    """A client whose every call fails within ``timeout`` and never retries (scrape-bound),
    reading replies through :class:`CappedParser` (RESP2, the default protocol).  For a
    ``redis+sentinel://`` URL, the current master, found through Sentinel."""
    if is_sentinel_url(url):
        options = {
            "socket_timeout": timeout,
            "socket_connect_timeout": timeout,
            "retry": Retry(NoBackoff(), 0),
            **(redis_kwargs or {}),
        }
        client = redis.Redis(connection_pool=sentinel_pool(url, options))
    else:
        client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            **(redis_kwargs or {}),
        )
    options = client.connection_pool.connection_kwargs
    if str(options.get("protocol") or 2) == "2":
        options["parser_class"] = CappedParser
    return client


#: the counter ErrorCounts keeps for failed scrapes
_ERRORS = "errors"
_SKIPPED = "skipped"
_DROPPED = "dropped:"


class ErrorCounts:
    """Failed scrapes, skipped INFO fields and dropped series per instance, kept beyond
    one collector (thread-safe, bounded).

    ``/scrape`` builds a collector per request; were the counts the collector's
    own, ``cache_exporter_scrape_errors_total`` would start at 0 on every
    request, a counter going backwards whose ``rate()`` is 0 while a target
    keeps failing.  The least recently scraped instance is forgotten beyond
    ``max_instances`` (its counters then restart at 0, which Prometheus reads
    as a reset), so arbitrary targets cannot grow memory without bound.
    """

    def __init__(self, max_instances: int = 10_000) -> None:
        self.max_instances = max_instances
        self._counts: OrderedDict[str, Counter[str]] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, instance: str, amount: int = 1, what: str = _ERRORS) -> None:
        with self._lock:
            counts = self._counts.get(instance)
            if counts is None:
                counts = self._counts[instance] = Counter()
            counts[what] += amount
            self._counts.move_to_end(instance)
            while len(self._counts) > self.max_instances:
                self._counts.popitem(last=False)

    def get(self, instance: str, what: str = _ERRORS) -> int:
        with self._lock:
            if instance in self._counts:
                self._counts.move_to_end(instance)
            return self._counts.get(instance, Counter())[what]

    def dropped(self, instance: str) -> dict[str, int]:
        """Series dropped so far per family name."""
        with self._lock:
            counts = self._counts.get(instance, Counter())
            return {
                k[len(_DROPPED) :]: v for k, v in sorted(counts.items()) if k.startswith(_DROPPED)
            }

    def record(self, instance: str, tally: Tally) -> None:
        """Fold one scrape's skipped fields and dropped series in."""
        self.add(instance, tally.skipped, _SKIPPED)
        for family, count in tally.dropped.items():
            if count:
                self.add(instance, count, _DROPPED + family)


class RedisInfoCollector(Collector):
    """Reads ``INFO ALL`` on each scrape and reports its own health alongside.

    The deadline (``timeout``) covers the round trip, the parse and building the
    families, and the families are capped, so rendering them is bounded too."""

    def __init__(
        self,
        redis_url: str,
        *,
        instance: str,
        timeout: float = 2.5,
        redis_kwargs: dict[str, Any] | None = None,
        errors: ErrorCounts | None = None,
    ) -> None:
        self.instance = instance
        #: per-instance counters; /scrape shares one across its per-request collectors
        self._errors = ErrorCounts() if errors is None else errors
        self._timeout = timeout
        self._deadline = Deadline(f"redis {instance}")
        self._client = redis_client(redis_url, timeout, redis_kwargs)
        self._sentinel = is_sentinel_url(redis_url)
        # keep INFO's raw text: the parser is ours, tested on captures
        self._client.set_response_callback("INFO", lambda response, **_: response)
        self._client.set_response_callback("CLUSTER INFO", lambda response, **_: response)
        self._repeats = RepeatFilter()
        #: whether the last INFO said cluster node (True) or plain node (False): the
        #: follow-ups to send along with the next INFO (None: INFO alone, then as it says)
        self._expected_cluster: bool | None = None

    def describe(self) -> list[Metric]:
        """Families by name only, so registering never talks to Redis."""
        specs = (
            *metrics.REDIS_METRICS,
            *(item.spec for item in metrics.REDIS_CLUSTER_INFO_FIELDS),
            metrics.EXPORTER_SCRAPE_DURATION,
            metrics.EXPORTER_SCRAPE_ERRORS,
            metrics.EXPORTER_LAST_SCRAPE_ERROR,
            metrics.INFO_FIELDS_SKIPPED,
            metrics.SERIES_DROPPED,
            metrics.REDIS_CONFIG_UP,
        )
        return [
            SummaryMetricFamily(spec.family, spec.help)
            if spec.kind == "summary"
            else spec.new_family()
            for spec in specs
        ]

    def _bounded(self, call: Callable[[], T]) -> T:
        """``call()`` within the timeout as a wall-clock deadline, not just per socket read."""
        try:
            return self._deadline.run(call, self._timeout)
        except DeadlineExceeded:
            # end the abandoned call's read instead of leaving its thread on the socket
            self._client.connection_pool.disconnect()
            raise

    def _scrape(self, stop_at: float) -> tuple[list[Metric], Tally, RedisInfo]:
        """INFO ALL, parsed and turned into families (in the deadline's helper thread),
        then the follow-ups INFO calls for (:meth:`_follow_ups`).  Through Sentinel, a
        Sentinel is asked for the master first: when it names another node, idle
        connections are dropped, so this very scrape reads the new master (a demoted
        or partitioned old master may still answer, and say it is master)."""
        if self._sentinel:
            self._client.connection_pool.get_master_address()
        cluster = self._expected_cluster
        prefetched: list[Any] | None = None
        if cluster is None:
            text = _text_reply(self._client.execute_command("INFO", "ALL"), "INFO")
        else:  # the follow-ups the last INFO called for, in INFO's own round trip
            pipe = self._client.pipeline(transaction=False)
            pipe.execute_command("INFO", "ALL")
            self._queue_follow_ups(pipe, cluster)
            reply, *prefetched = pipe.execute(raise_on_error=False)
            if isinstance(reply, Exception):
                raise reply
            text = _text_reply(reply, "INFO")
        tally = Tally()
        info = parse_info(text, stop_at=stop_at)
        families = list(info_metrics(info, self.instance, tally))
        try:
            families += self._follow_ups(info, tally, prefetched)
        except (redis.RedisError, InfoParseError) as exc:  # optional: log and carry on
            log.warning(
                "Redis %s: reading CONFIG/CLUSTER INFO/SENTINEL after INFO failed: %s",
                self.instance,
                error_class(exc),
            )
        return families, tally, info

    @staticmethod
    def _queue_follow_ups(pipe: Any, cluster: bool) -> None:
        pipe.execute_command("CONFIG", "GET", "max*")
        if cluster:
            pipe.execute_command("CLUSTER", "INFO")

    def _follow_ups(
        self, info: RedisInfo, tally: Tally, prefetched: list[Any] | None = None
    ) -> list[Metric]:
        """What INFO says this server has: a Sentinel's masters (two round trips), or
        CONFIG GET and, on a cluster node, CLUSTER INFO (one pipelined round trip).
        The latter are remembered, so the next scrape sends them along with INFO
        (``prefetched``: their replies); when INFO then says otherwise (the node became
        a Sentinel, or joined a cluster), they are asked for again, as INFO says."""
        if info.get("server", "redis_mode") == "sentinel":
            self._expected_cluster = None
            masters, peers, dropped = sentinel.read_masters(self._client)
            return list(
                sentinel.sentinel_metrics(masters, peers, self.instance, dropped, tally.dropped)
            )
        cluster = info.get("cluster", "cluster_enabled") == "1"
        self._expected_cluster = cluster
        if prefetched is not None and len(prefetched) == 1 + cluster:
            replies = prefetched
        else:
            pipe = self._client.pipeline(transaction=False)
            self._queue_follow_ups(pipe, cluster)
            replies = pipe.execute(raise_on_error=False)
        config = sentinel.flat_pairs(replies[0])  # {} when CONFIG is renamed or refused
        families = list(field_metrics(config, metrics.REDIS_CONFIG_FIELDS, self.instance, tally))
        config_up = metrics.REDIS_CONFIG_UP.new_family()
        config_up.add_metric([self.instance], 1.0 if config else 0.0)
        families.append(config_up)
        if cluster and not isinstance(replies[1], Exception):
            fields = cluster_info_fields(_text_reply(replies[1], "CLUSTER INFO"))
            families += field_metrics(
                fields, metrics.REDIS_CLUSTER_INFO_FIELDS, self.instance, tally
            )
        return families

    def ping(self) -> None:
        """Raise unless Redis answers within the timeout (readiness)."""
        self._bounded(self._client.ping)

    def collect(self) -> Iterator[Metric]:
        """INFO's families, then ``redis_up`` and the self-metrics, whatever happened."""
        started = time.perf_counter()
        families: list[Metric] = []
        failure = ""
        try:
            stop_at = time.monotonic() + self._timeout
            families, tally, info = self._bounded(lambda: self._scrape(stop_at))
        except Exception as exc:  # whatever the reply did, redis_up and ours are served
            failure = error_class(exc)
            self._errors.add(self.instance)
            log.warning("scrape of Redis %s failed: %s", self.instance, failure)
        else:
            self._errors.record(self.instance, tally)
            self._report(tally, info)
        yield from families
        yield from self._self_metrics(failure, time.perf_counter() - started)

    def _report(self, tally: Tally, info: RedisInfo) -> None:
        """One log line when a reply starts skipping fields or dropping a family's
        series (not one per scrape: the same kinds of loss are logged once a streak)."""
        families = sorted(f for f, n in tally.dropped.items() if n)
        if not tally.skipped and not families:
            self._repeats.reset()
            return
        level = self._repeats.level(f"{bool(tally.skipped)} {families}")
        if tally.skipped:
            first = info.skipped_names[0] if info.skipped_names else ""
            log.log(
                level,
                "INFO of Redis %s: %d fields do not parse and were skipped (first: %r)",
                self.instance,
                tally.skipped,
                first,
            )
        if families:
            log.log(
                level,
                "INFO of Redis %s: over their caps, series dropped: %s",
                self.instance,
                ", ".join(f"{f} {tally.dropped[f]}" for f in families),
            )

    def _self_metrics(self, failure: str, seconds: float) -> Iterator[Metric]:
        up = metrics.REDIS_UP.new_family()
        up.add_metric([self.instance], 0.0 if failure else 1.0)
        yield up
        duration = metrics.EXPORTER_SCRAPE_DURATION.new_family()
        duration.add_metric([self.instance], seconds)
        yield duration
        errors = metrics.EXPORTER_SCRAPE_ERRORS.new_family()
        errors.add_metric([self.instance], float(self._errors.get(self.instance)))
        yield errors
        last = metrics.EXPORTER_LAST_SCRAPE_ERROR.new_family()
        last.add_metric([self.instance, failure], 1.0 if failure else 0.0)
        yield last
        skipped = metrics.INFO_FIELDS_SKIPPED.new_family()
        skipped.add_metric([self.instance], float(self._errors.get(self.instance, _SKIPPED)))
        yield skipped
        dropped = metrics.SERIES_DROPPED.new_family()
        for family, count in self._errors.dropped(self.instance).items():
            dropped.add_metric([self.instance, family], float(count))
        yield dropped

    def close(self) -> None:
        self._client.close()
        manager = getattr(self._client.connection_pool, "sentinel_manager", None)
        for peer in getattr(manager, "sentinels", ()):
            peer.close()
