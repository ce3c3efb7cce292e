"""Per-type key counts and memory, estimated by a background sampler.

The Go exporter's key-group feature runs one Lua script that scans the whole
keyspace on every scrape: at 1 M keys that blocked Redis for seconds.  This
sampler does the opposite:

* it runs in its own daemon thread, never at scrape time: ``collect()`` only
  reads the latest finished :class:`Estimate`;
* a cycle walks each database that has keys (INFO ``keyspace`` names them;
  ``cache_*`` series have no db label, so databases are summed) with ``SCAN
  cursor COUNT batch_size`` followed by one pipelined ``MEMORY USAGE key
  SAMPLES memory_samples`` per returned key, then pauses ``pause`` seconds, so
  Redis is only ever busy for one small batch at a time;
* a cycle ends when SCAN is back at cursor 0 (every key seen: the counts are
  exact), or when ``max_keys`` keys were measured or ``cycle_budget`` seconds
  passed.  SCAN walks the hash table in slot order, and slots are hashes, so a
  prefix of a full SCAN is a fair random sample: counts are then extrapolated
  as (share of sampled keys of a type) x DBSIZE and sizes as (mean size of the
  type) x (estimated count).  The sample size is reported with the estimate.

``MEMORY USAGE ... SAMPLES 5`` (Redis' own default), not ``SAMPLES 0``: for
strings and small (listpack) aggregates both are exact, but ``SAMPLES 0``
walks every element of a large hash/list/set, so one million-field hash would
block Redis for as long as the Go exporter's scan does.  With 5 the size of a
large aggregate is estimated from 5 elements, in constant time.

A user whose ACL lacks ``+memory`` (or a Redis with MEMORY renamed) gets
error replies to ``MEMORY USAGE``: the keys still count, and with no size
read at all ``cache_size_bytes`` is left out rather than served as 0.

SCAN may return a key twice while Redis rehashes; such duplicates are counted
like any sampled key (a negligible bias, not worth a per-cycle key set).

At most :data:`MAX_DATABASES` databases are sampled per cycle (the ones with
the most keys; keys elsewhere are not counted, and the log says so once), and
pools of databases no longer sampled are closed.  A cycle that fails for any
reason (Redis down, a keyspace reply that does not parse) ends the attempt;
the supervisor of :class:`~exporter.collectors._redis.BackgroundThread`
restarts it with backoff and reports it in ``cache_exporter_collector_*``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import Metric

from exporter.collectors._redis import (
    BackgroundThread,
    KeyClassifier,
    client,
    connection_pool,
    url_db,
)
from exporter.collectors.health import CollectorHealth, RepeatFilter
from exporter.collectors.info_parser import InfoParseError, parse_info
from exporter.metrics import (
    CACHE_KEYS,
    CACHE_SIZE,
    COLLECTOR_KEYSPACE_SAMPLER,
    LAYER_REDIS,
    SAMPLER_CYCLE_SECONDS,
    SAMPLER_CYCLES,
    SAMPLER_KEYS_SAMPLED,
    SAMPLER_LAST_CYCLE,
)
from exporter.slo import SLO

log = logging.getLogger(__name__)

#: SCAN COUNT per batch: a SCAN costs Redis ~2 us per key returned (measured at 1M keys:
#: ~0.45 ms for COUNT 200), MEMORY USAGE ~2 us per key; 100 keeps one batch well under 1 ms
DEFAULT_BATCH_SIZE = 100
#: wall-clock seconds one cycle may take before it settles for a sample (1M keys: ~70 s)
DEFAULT_CYCLE_BUDGET = 120.0
#: seconds between batches: Redis idle most of the time, the sampler at ~1/4 of a core
DEFAULT_PAUSE = 0.005
#: keys measured per cycle at most; keyspaces up to this size are counted exactly
DEFAULT_MAX_KEYS = 1_000_000
#: seconds from the end of one cycle to the start of the next
DEFAULT_INTERVAL = 60.0
#: MEMORY USAGE SAMPLES: Redis' default; 0 would walk whole aggregates (see module doc)
DEFAULT_MEMORY_SAMPLES = 5
#: databases sampled per cycle at most (the ones with the most keys): each needs a
#: connection pool, and INFO keyspace is whatever the server says it is
MAX_DATABASES = 64


@dataclass(frozen=True)
class DbSample:
    """What one cycle measured in one database."""

    db: int
    dbsize: int
    sampled: int
    complete: bool
    keys: Mapping[str, int]
    size_bytes: Mapping[str, int]
    #: keys per type whose MEMORY USAGE was read (None: all of ``keys``)
    measured: Mapping[str, int] | None = None

    @property
    def sized(self) -> int:
        """Keys whose size was read."""
        return self.sampled if self.measured is None else sum(self.measured.values())

    def extrapolated(self) -> tuple[dict[str, float], dict[str, float]]:
        """Per-type (count, bytes) for the whole database.

        A complete pass is reported as seen; a partial one scales every type by
        DBSIZE / sampled, which is share x DBSIZE for counts and mean size x
        estimated count for bytes.  Keys whose size could not be read (MEMORY
        USAGE refused) count, and take their type's mean measured size.
        """
        if self.complete or self.sampled == 0:
            scale = 1.0 if self.complete else 0.0
        else:
            scale = self.dbsize / self.sampled
        keys = {t: n * scale for t, n in self.keys.items()}
        size = {}
        for t, b in self.size_bytes.items():
            n = self.keys.get(t, 0)
            m = n if self.measured is None else self.measured.get(t, 0)
            size[t] = b * scale * n / m if m else 0.0
        return keys, size


@dataclass(frozen=True)
class Estimate:
    """The result of one finished cycle: what ``collect()`` serves until the next."""

    keys: Mapping[str, float]
    size_bytes: Mapping[str, float]
    sampled: int
    total_keys: int
    complete: bool
    duration: float
    finished_at: float
    dbs: tuple[DbSample, ...] = field(default=())
    #: False when keys were seen but no size could be read (no cache_size_bytes then)
    sized: bool = True

    @classmethod
    def combine(
        cls, samples: Iterable[DbSample], types: Iterable[str], duration: float, finished_at: float
    ) -> Estimate:
        """Sum per-database extrapolations; every type is present (0 when unseen)."""
        dbs = tuple(samples)
        keys = dict.fromkeys(types, 0.0)
        size = dict.fromkeys(types, 0.0)
        for sample in dbs:
            db_keys, db_size = sample.extrapolated()
            for t, n in db_keys.items():
                keys[t] = keys.get(t, 0.0) + n
            for t, b in db_size.items():
                size[t] = size.get(t, 0.0) + b
        return cls(
            keys=keys,
            size_bytes=size,
            sampled=sum(s.sampled for s in dbs),
            total_keys=sum(s.dbsize for s in dbs),
            complete=all(s.complete for s in dbs),
            duration=duration,
            finished_at=finished_at,
            dbs=dbs,
            sized=any(s.sized for s in dbs) or not any(s.sampled for s in dbs),
        )


def dbs_with_keys(keyspace: Mapping[str, Any]) -> dict[int, int]:
    """``{db: keys}`` from a parsed ``INFO keyspace`` (``{"db0": {"keys": 3, ...}}``)."""
    found: dict[int, int] = {}
    for name, fields in keyspace.items():
        if name.startswith("db") and name[2:].isdigit() and isinstance(fields, Mapping):
            keys = int(fields.get("keys", 0))
            if keys > 0:
                found[int(name[2:])] = keys
    return dict(sorted(found.items()))


def largest_dbs(populated: Mapping[int, int], limit: int = MAX_DATABASES) -> dict[int, int]:
    """The ``limit`` databases with the most keys (ties: lower number first), by number."""
    if len(populated) <= limit:
        return dict(populated)
    largest = sorted(populated.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return dict(sorted(largest))


class KeyspaceSampler(BackgroundThread):
    """Background estimator of ``cache_keys`` and ``cache_size_bytes`` per key type."""

    label = "keyspace sampler"
    failure = "cycle failed"

    def __init__(
        self,
        redis_url: str,
        slo: SLO,
        *,
        instance: str,
        batch_size: int = DEFAULT_BATCH_SIZE,
        cycle_budget: float = DEFAULT_CYCLE_BUDGET,
        pause: float = DEFAULT_PAUSE,
        max_keys: int = DEFAULT_MAX_KEYS,
        interval: float = DEFAULT_INTERVAL,
        redis_kwargs: dict[str, Any] | None = None,
        memory_samples: int = DEFAULT_MEMORY_SAMPLES,
    ) -> None:
        for name, value in (("batch_size", batch_size), ("max_keys", max_keys)):
            if value < 1:
                raise ValueError(f"KeyspaceSampler {name}: expected an integer >= 1, got {value}")
        seconds = (("cycle_budget", cycle_budget), ("pause", pause), ("interval", interval))
        for name, number in seconds:
            if number < 0:
                raise ValueError(f"KeyspaceSampler {name}: expected seconds >= 0, got {number}")
        if memory_samples < 0:
            raise ValueError(f"KeyspaceSampler memory_samples: expected >= 0, got {memory_samples}")
        self.instance = instance
        self.batch_size = batch_size
        self.cycle_budget = cycle_budget
        self.pause = pause
        self.max_keys = max_keys
        self.interval = interval
        self.memory_samples = memory_samples
        self._url = redis_url
        self._redis_kwargs = dict(redis_kwargs or {})
        self._types = slo.type_names
        self._classify = KeyClassifier(slo)
        self._main_pool = connection_pool(redis_url, self._redis_kwargs)
        main = client(self._main_pool)
        main.set_response_callback("INFO", lambda response, **_: response)  # our parser reads it
        self._clients: dict[int, Any] = {url_db(self._main_pool): main}
        self._estimate: Estimate | None = None
        self._warned_memory = False
        self._warned_dbs = False
        self.health = CollectorHealth(COLLECTOR_KEYSPACE_SAMPLER, instance)
        self._cycles = 0
        self._progress = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._repeats = RepeatFilter()

    # --- lifecycle ---------------------------------------------------------------

    def _disconnect(self) -> None:
        for each in list(self._clients.values()):
            each.connection_pool.disconnect()

    def wait_for_cycle(self, timeout: float, cycles: int = 1) -> bool:
        """Block until at least ``cycles`` cycles have finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._cycles >= cycles, timeout)

    @property
    def estimate(self) -> Estimate | None:
        """The latest finished estimate (None before the first cycle)."""
        return self._estimate

    @property
    def cycles(self) -> int:
        return self._cycles

    @property
    def progress(self) -> int:
        """Keys measured so far in the running cycle (0 between cycles)."""
        return self._progress

    # --- sampling ------------------------------------------------------------------

    def _loop(self) -> None:
        """Cycles until stopped; a failure propagates to the supervisor, which restarts
        this loop with backoff (:class:`~exporter.collectors._redis.BackgroundThread`)."""
        while not self._stop.is_set():
            if self.run_cycle() is not None:  # None: stopped midway
                self._succeeded()
            self._stop.wait(self.interval)

    def run_cycle(self) -> Estimate | None:
        """One full cycle in the calling thread; publishes and returns the estimate.

        Returns None (publishing nothing) when stopped midway.
        """
        started = time.monotonic()
        deadline = started + self.cycle_budget
        main = self._clients[url_db(self._main_pool)]
        populated = self._bounded_dbs(dbs_with_keys(self._keyspace(main)))
        total = sum(populated.values())
        samples = []
        self._progress = 0
        try:
            for db, keys in populated.items():
                quota = max(1, round(self.max_keys * keys / total))
                sample = self._sample_db(db, quota, deadline)
                if sample is None:
                    return None
                samples.append(sample)
        finally:
            self._progress = 0
        finished = time.monotonic()
        estimate = Estimate.combine(samples, self._types, finished - started, time.time())
        with self._cond:
            self._estimate = estimate
            self._cycles += 1
            self._cond.notify_all()
        return estimate

    @staticmethod
    def _keyspace(main: Any) -> Mapping[str, Mapping[str, float]]:
        """``INFO keyspace`` through our parser (bounded, never raises on the text)."""
        raw = main.execute_command("INFO", "keyspace")
        if not isinstance(raw, bytes | str):
            raise InfoParseError(f"INFO keyspace: expected text, got {type(raw).__name__}")
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return parse_info(text).keyspace

    def _bounded_dbs(self, populated: dict[int, int]) -> dict[int, int]:
        """At most :data:`MAX_DATABASES` databases; clients of databases no longer
        sampled are closed, so a keyspace that names 100 k databases once does not
        leave 100 k connection pools behind."""
        kept = largest_dbs(populated)
        if len(kept) < len(populated) and not self._warned_dbs:
            self._warned_dbs = True
            log.warning(
                "keyspace sampler for %s: INFO keyspace names %d databases with keys; "
                "sampling the %d largest, keys elsewhere are not counted",
                self.instance,
                len(populated),
                len(kept),
            )
        main = url_db(self._main_pool)
        for db in [db for db in self._clients if db != main and db not in kept]:
            self._clients.pop(db).connection_pool.disconnect()
        return kept

    def _client(self, db: int) -> Any:
        found = self._clients.get(db)
        if found is None:
            pool = connection_pool(self._url, self._redis_kwargs, db=db)
            found = self._clients[db] = client(pool)
        return found

    def _sample_db(self, db: int, quota: int, deadline: float) -> DbSample | None:
        conn = self._client(db)
        counts = dict.fromkeys(self._types, 0)
        sizes = dict.fromkeys(self._types, 0)
        measured = dict.fromkeys(self._types, 0)
        classify = self._classify
        sampled = 0
        cursor: int = 0
        complete = False
        while True:
            cursor, keys = conn.scan(cursor, count=self.batch_size)
            if keys:
                pipe = conn.pipeline(transaction=False)
                for key in keys:
                    pipe.execute_command("MEMORY USAGE", key, "SAMPLES", self.memory_samples)
                for key, size in zip(keys, pipe.execute(raise_on_error=False), strict=True):
                    if size is None:  # the key vanished after SCAN
                        continue
                    kind = classify(key)
                    counts[kind] += 1
                    sampled += 1
                    if isinstance(size, int):
                        sizes[kind] += size
                        measured[kind] += 1
                    else:  # an error reply: MEMORY refused (ACL, renamed command)
                        self._memory_refused(size)
                self._progress += len(keys)
            if int(cursor) == 0:
                complete = True
                break
            if sampled >= quota or time.monotonic() >= deadline:
                break
            if self._stop.wait(self.pause):
                return None
        dbsize = int(conn.dbsize())
        return DbSample(db, dbsize, sampled, complete, counts, sizes, measured)

    def _memory_refused(self, error: object) -> None:
        if not self._warned_memory:
            self._warned_memory = True
            log.warning(
                "keyspace sampler for %s: MEMORY USAGE refused (%s); key counts are still "
                "estimated, cache_size_bytes is not served (grant +memory to the exporter's user)",
                self.instance,
                type(error).__name__,
            )

    # --- prometheus-client collector -------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """The families ``collect`` yields, without touching Redis."""
        for spec in (
            CACHE_KEYS,
            CACHE_SIZE,
            SAMPLER_KEYS_SAMPLED,
            SAMPLER_CYCLE_SECONDS,
            SAMPLER_CYCLES,
            SAMPLER_LAST_CYCLE,
        ):
            yield spec.new_family()

    def collect(self) -> Iterator[Metric]:
        """The latest estimate; never waits for a scan (no estimate: no cache_* samples)."""
        estimate = self._estimate
        keys = CACHE_KEYS.new_family()
        size = CACHE_SIZE.new_family()
        sampled = SAMPLER_KEYS_SAMPLED.new_family()
        duration = SAMPLER_CYCLE_SECONDS.new_family()
        cycles = SAMPLER_CYCLES.new_family()
        last = SAMPLER_LAST_CYCLE.new_family()
        me = SAMPLER_CYCLES.label_values(instance=self.instance)
        cycles.add_metric(me, self._cycles)
        if estimate is not None:
            for kind in self._types:
                labels = CACHE_KEYS.label_values(layer=LAYER_REDIS, type=kind)
                keys.add_metric(labels, estimate.keys.get(kind, 0.0))
                if estimate.sized:
                    size.add_metric(labels, estimate.size_bytes.get(kind, 0.0))
            sampled.add_metric(me, estimate.sampled)
            duration.add_metric(me, estimate.duration)
            last.add_metric(me, estimate.finished_at)
        yield from (keys, size, sampled, duration, cycles, last)
