"""Redis Cluster: every node found from any one, each node's INFO, per-type sums.

Pointed at one node (``serve --cluster``), :class:`ClusterCollector` reads the
topology with ``CLUSTER NODES`` (any Redis 3+, unlike ``CLUSTER SHARDS``) and
then, on every scrape:

* scrapes each node's ``INFO`` (and ``CLUSTER INFO``) in parallel with one
  :class:`~exporter.collectors.redis_info.RedisInfoCollector` per node, so every
  ``redis_*`` series carries ``instance`` = the node's address, and
  ``redis_cluster_node_info`` says its role, its master and its state;
* sums ``cache_keys`` and ``cache_size_bytes`` over the shards: one
  :class:`~exporter.collectors.keyspace_sampler.KeyspaceSampler` per master, or
  per shard on a healthy replica with ``--cluster-sample-replicas`` (SCAN and
  MEMORY USAGE then cost the masters nothing).  A shard is known by the first
  slot it serves, so after a failover the promoted replica's shard keeps the
  last estimate until its own sampler finishes a cycle; the sums are served only
  when every shard has an estimate;
* sums ``cache_evictions_total`` over one
  :class:`~exporter.collectors.evictions.EvictionTracker` per node, replicas
  included: a replica neither evicts nor expires (its master's DELs do), so it
  adds 0, but its subscription is in place (and its notification flags set) the
  moment it is promoted.  A node that leaves the topology folds its last counts
  into a retired total, so the sums never go down.

The topology is read again every ``refresh`` seconds, and at the next scrape
after anything says it moved: a node that failed to answer, or whose INFO role
differs from the topology's (a failover).  Slot migrations are followed by the
periodic read.  At most :data:`MAX_CLUSTER_NODES` nodes are scraped (masters
first); lines of ``CLUSTER NODES`` that do not parse are skipped, and both are
counted in ``cache_exporter_cluster_nodes_dropped``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal
from urllib.parse import urlsplit

from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from exporter import metrics
from exporter.collectors._deadline import Deadline
from exporter.collectors.evictions import EvictionTracker
from exporter.collectors.health import RepeatFilter, error_class
from exporter.collectors.keyspace_sampler import Estimate, KeyspaceSampler
from exporter.collectors.redis_info import ErrorCounts, RedisInfoCollector, redis_client
from exporter.slo import SLO

log = logging.getLogger(__name__)

#: nodes scraped at most (Redis suggests clusters up to 1000 nodes; each node costs a
#: connection for INFO and a thread and two connections for its eviction tracker)
MAX_CLUSTER_NODES = 256
#: seconds between topology reads when nothing suggests a change
DEFAULT_REFRESH = 30.0
#: nodes asked for the topology per read at most (the ones last seen healthy first)
MAX_DISCOVERY_ATTEMPTS = 5
#: threads scraping nodes at once
MAX_PARALLEL = 16
SLOT_COUNT = 16384

Role = Literal["master", "replica"]


@dataclass(frozen=True)
class ClusterNode:
    """One line of ``CLUSTER NODES``."""

    node_id: str
    host: str
    port: int
    role: Role
    #: the master's node id (replicas), else ""
    master_id: str
    #: ``ok``, ``pfail`` (this node suspects it down) or ``fail`` (the cluster agrees)
    state: str
    slots: tuple[tuple[int, int], ...] = ()

    @property
    def address(self) -> str:
        """``host:port`` (IPv6 bracketed): the node's ``instance`` label."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def first_slot(self) -> int | None:
        """The lowest slot served: what names a shard across failovers."""
        return min(start for start, _ in self.slots) if self.slots else None


@dataclass(frozen=True)
class Topology:
    """The nodes of one ``CLUSTER NODES`` reply (masters first) and what was left out."""

    nodes: tuple[ClusterNode, ...]
    dropped: int = 0

    def shards(self) -> list[tuple[ClusterNode, list[ClusterNode]]]:
        """Masters serving slots, with their healthy replicas (sorted by address)."""
        found = []
        for master in self.nodes:
            if master.role != "master" or not master.slots:
                continue
            replicas = [
                n
                for n in self.nodes
                if n.role == "replica" and n.master_id == master.node_id and n.state == "ok"
            ]
            found.append((master, sorted(replicas, key=lambda n: n.address)))
        return found


#: a host name or an IPv4/IPv6 address: nothing that changes how a URL built from it parses
_HOST_RE = re.compile(r"^[A-Za-z0-9.:_%\[\]-]{1,255}$")


def _valid_host(host: str) -> bool:
    return bool(_HOST_RE.match(host))


def parse_cluster_nodes(text: str, seed_host: str, limit: int = MAX_CLUSTER_NODES) -> Topology:
    """The topology in a ``CLUSTER NODES`` reply; never raises on the text.

    Nodes still in handshake or without an address are not nodes yet and are
    left out; a line that does not parse is counted in ``dropped``, as are the
    nodes beyond ``limit``.  A node that does not know its own address yet
    (a fresh one-node cluster says ``:6379``) takes ``seed_host``."""
    nodes: dict[str, ClusterNode] = {}
    dropped = 0
    for line in text.split("\n"):
        parts = line.strip().split(" ")
        if len(parts) == 1 and not parts[0]:
            continue
        node = _node(parts, seed_host)
        if node is None:
            dropped += 1
        elif node is not _NOT_YET:
            nodes.setdefault(node.node_id, node)
    ordered = sorted(nodes.values(), key=lambda n: (n.role != "master", n.address))
    dropped += max(0, len(ordered) - limit)
    return Topology(tuple(ordered[:limit]), dropped)


#: a node in handshake or without an address: skipped, not counted as a bad line
_NOT_YET = ClusterNode("", "", 0, "master", "", "ok")


def _node(parts: list[str], seed_host: str) -> ClusterNode | None:
    if len(parts) < 8:
        return None
    node_id, address, flag_text, master = parts[:4]
    if not (0 < len(node_id) <= 64 and node_id.isalnum()):
        return None
    flags = set(flag_text.split(","))
    if flags & {"handshake", "noaddr"}:
        return _NOT_YET
    host, sep, port_text = address.split("@", 1)[0].split(",", 1)[0].rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        return None
    host = host.strip("[]") or seed_host
    if not _valid_host(host):
        return None
    if "master" in flags:
        role: Role = "master"
    elif "slave" in flags:
        role = "replica"
    else:
        return None
    state = "fail" if "fail" in flags else "pfail" if "fail?" in flags else "ok"
    slots = []
    for item in parts[8:]:
        if item.startswith("["):  # a slot being migrated or imported: its owner lists it
            continue
        start, _, end = item.partition("-")
        end = end or start
        if not (start.isdigit() and end.isdigit()):
            return None
        first, last = int(start), int(end)
        if not 0 <= first <= last < SLOT_COUNT:
            return None
        slots.append((first, last))
    master_id = master if role == "replica" and master != "-" else ""
    return ClusterNode(node_id, host, int(port_text), role, master_id, state, tuple(slots))


def merge(families: Iterable[Metric], summed: Iterable[str] = ()) -> dict[str, Metric]:
    """One family per name (a registry must not serve a name twice): samples of the
    same name appended, or added up by labels for the families named in ``summed``."""
    to_sum = set(summed)
    merged: dict[str, Metric] = {}
    for family in families:
        found = merged.get(family.name)
        if found is None:
            found = merged[family.name] = Metric(family.name, family.documentation, family.type)
        found.samples.extend(family.samples)
    for name in to_sum & merged.keys():
        totals: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        for sample in merged[name].samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            totals[key] = totals.get(key, 0.0) + sample.value
        merged[name].samples = []
        for (sample_name, labels), value in totals.items():
            merged[name].add_sample(sample_name, dict(labels), value)
    return merged


def _collected(collector: Collector) -> list[Metric]:
    return list(collector.collect())


class ClusterCollector(Collector):
    """Every node of a Redis Cluster, found from ``redis_url`` (any one node)."""

    def __init__(
        self,
        redis_url: str,
        slo: SLO,
        *,
        instance: str,
        timeout: float = 2.5,
        redis_kwargs: dict[str, Any] | None = None,
        refresh: float = DEFAULT_REFRESH,
        background: bool = True,
        sample_replicas: bool = False,
        sampler: dict[str, Any] | None = None,
        configure_notifications: bool = False,
        evictions_timeout: float = 1.0,
        max_nodes: int = MAX_CLUSTER_NODES,
    ) -> None:
        parts = urlsplit(redis_url)
        self.instance = instance
        self._scheme = "rediss" if parts.scheme == "rediss" else "redis"
        self._seed_url = redis_url  # any node (a socket path too): asked when no known one answers
        self._seed_host = parts.hostname or "127.0.0.1"
        self._kwargs = dict(redis_kwargs or {})
        self._slo = slo
        self._timeout = timeout
        self.refresh_interval = refresh
        self.background = background
        self.sample_replicas = sample_replicas
        self._sampler_options = dict(sampler or {})
        self._configure_notifications = configure_notifications
        self._evictions_timeout = evictions_timeout
        self._max_nodes = max_nodes
        self._topology = Topology(())
        self._info: dict[str, RedisInfoCollector] = {}
        self._samplers: dict[str, KeyspaceSampler] = {}  # by node address
        self._trackers: dict[str, EvictionTracker] = {}  # by node address
        #: the last estimate per shard (its first slot), kept across failovers
        self._shard_estimates: dict[int, Estimate] = {}
        #: the last evictions seen per tracker, and the counts of trackers since stopped
        self._last_evictions: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        self._retired: dict[tuple[tuple[str, str], ...], float] = {}
        self._errors = ErrorCounts()
        self._discoveries: Counter[str] = Counter()
        self._stale = True
        self._next_refresh = 0.0
        self._lock = threading.RLock()
        self._pool = ThreadPoolExecutor(MAX_PARALLEL, thread_name_prefix="cluster-scrape")
        self._repeats = RepeatFilter()
        self._deadline = Deadline(f"cluster {instance} discovery")
        self._stopping: list[threading.Thread] = []

    # --- topology ---------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        return self._topology

    def node_url(self, address: str) -> str:
        return f"{self._scheme}://{address}/0"

    def _candidates(self) -> list[str]:
        """URLs to read the topology from: healthy masters, then any known node; the
        seed (``redis_url``) last."""
        known = sorted(self._topology.nodes, key=lambda n: (n.state != "ok", n.role != "master"))
        urls = [self.node_url(n.address) for n in known]
        first = [url for url in dict.fromkeys(urls) if url != self._seed_url]
        return [*first[: MAX_DISCOVERY_ATTEMPTS - 1], self._seed_url]

    def refresh(self) -> bool:
        """Read the topology from the first node that answers and apply it; False (the
        last topology kept, the next scrape tries again) when none did."""
        deadline = time.monotonic() + self._timeout
        failure: Exception | None = None
        for url in self._candidates():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            client = redis_client(url, remaining, self._kwargs)
            client.set_response_callback("CLUSTER NODES", lambda response, **_: response)
            try:
                # a wall-clock bound: socket timeouts alone let a trickling reply run on
                raw = self._deadline.run(
                    partial(client.execute_command, "CLUSTER NODES"), remaining
                )
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
                topology = parse_cluster_nodes(text, self._seed_host, self._max_nodes)
                if not topology.nodes:
                    raise ValueError("CLUSTER NODES named no node")
            except Exception as exc:  # this node is down or no cluster node: try the next
                failure = exc
                continue
            finally:
                client.connection_pool.disconnect()  # also ends an abandoned call's read
                client.close()
            self._discoveries["ok"] += 1
            self._apply(topology)
            self._stale = False
            self._next_refresh = time.monotonic() + self.refresh_interval
            self._repeats.reset()
            return True
        self._discoveries["error"] += 1
        self._stale = True
        reason = error_class(failure) if failure is not None else "timeout"
        log.log(
            self._repeats.level(reason),
            "cluster %s: topology not read from any known node (%s)",
            self.instance,
            reason,
        )
        return False

    def _apply(self, topology: Topology) -> None:
        before = {n.address: n for n in self._topology.nodes}
        self._topology = topology
        now = {n.address: n for n in topology.nodes}
        if before.keys() != now.keys() or any(
            (before[a].role, before[a].master_id) != (n.role, n.master_id)
            for a, n in now.items()
            if a in before
        ):
            log.info(
                "cluster %s: %d masters, %d replicas (%s)",
                self.instance,
                sum(n.role == "master" for n in topology.nodes),
                sum(n.role == "replica" for n in topology.nodes),
                ", ".join(f"{n.address} {n.role} {n.state}" for n in topology.nodes),
            )
        for address in now.keys() - self._info.keys():
            self._info[address] = RedisInfoCollector(
                self.node_url(address),
                instance=address,
                timeout=self._timeout,
                redis_kwargs=self._kwargs,
                errors=self._errors,
            )
        for address in self._info.keys() - now.keys():
            self._info.pop(address).close()
        if not self.background:
            return
        for address in now.keys() - self._trackers.keys():
            self._trackers[address] = tracker = EvictionTracker(
                self.node_url(address),
                self._slo,
                instance=address,
                configure_notifications=self._configure_notifications,
                redis_kwargs=self._kwargs,
                collect_timeout=self._evictions_timeout,
            )
            tracker.start()
        for address in self._trackers.keys() - now.keys():
            for labels, value in self._last_evictions.pop(address, {}).items():
                self._retired[labels] = self._retired.get(labels, 0.0) + value
            self._stop_later(self._trackers.pop(address))
        chosen = set(self._sampled().values())
        for address in chosen - self._samplers.keys():
            self._samplers[address] = sampler = KeyspaceSampler(
                self.node_url(address),
                self._slo,
                instance=address,
                redis_kwargs=self._kwargs,
                **self._sampler_options,
            )
            sampler.start()
        for address in self._samplers.keys() - chosen:
            self._stop_later(self._samplers.pop(address))

    def _sampled(self) -> dict[int, str]:
        """The node sampled per shard (by first slot): its master, or with
        ``sample_replicas`` its first healthy replica."""
        chosen = {}
        for master, replicas in self._topology.shards():
            node = replicas[0] if self.sample_replicas and replicas else master
            chosen[master.first_slot or 0] = node.address
        return chosen

    def _stop_later(self, worker: KeyspaceSampler | EvictionTracker) -> None:
        """Stop a worker without holding the scrape (stop joins its thread)."""
        thread = threading.Thread(target=worker.stop, name="cluster-stop", daemon=True)
        thread.start()
        self._stopping = [t for t in self._stopping if t.is_alive()] + [thread]

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Read the topology and start the workers (a failure is retried at scrape time)."""
        with self._lock:
            self.refresh()

    def stop(self) -> None:
        with self._lock:
            workers: list[KeyspaceSampler | EvictionTracker] = [
                *self._samplers.values(),
                *self._trackers.values(),
            ]
            self._samplers.clear()
            self._trackers.clear()
            for worker in workers:
                self._stop_later(worker)
            for thread in self._stopping:
                thread.join()
            for info in self._info.values():
                info.close()
            self._info.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.stop()

    def ping(self) -> None:
        """Raise unless some node answers (readiness)."""
        with self._lock:
            if not self._info:  # none known yet (the seed was down): look again
                self.refresh()
            collectors = list(self._info.values())
        failure: Exception = ConnectionError("no cluster node known yet")
        for info in collectors:
            try:
                info.ping()
                return
            except Exception as exc:  # try the next node
                failure = exc
        raise failure

    # --- prometheus-client collector --------------------------------------------------

    def describe(self) -> Iterator[Metric]:
        """Families by name only: registering never talks to Redis."""
        specs = (
            *metrics.REDIS_METRICS,
            *metrics.CLUSTER_METRICS,
            metrics.EXPORTER_SCRAPE_DURATION,
            metrics.EXPORTER_SCRAPE_ERRORS,
            metrics.CACHE_KEYS,
            metrics.CACHE_SIZE,
            metrics.CACHE_EVICTIONS,
        )
        for spec in specs:
            if spec.kind in ("gauge", "counter"):
                yield spec.new_family()

    def _parallel(self, calls: list[Callable[[], list[Metric]]]) -> list[Metric]:
        found: list[Metric] = []
        for families in self._pool.map(lambda call: call(), calls):
            found.extend(families)
        return found

    def collect(self) -> Iterator[Metric]:
        with self._lock:  # one scrape at a time; the lock is not held across a yield
            if self._stale or time.monotonic() >= self._next_refresh:
                self.refresh()
            families = list(self._collect())
        yield from families

    def _collect(self) -> Iterator[Metric]:
        topology = self._topology
        nodes = {n.address: n for n in topology.nodes}
        infos = list(self._info.values())
        trackers = dict(self._trackers)
        families = self._parallel([partial(_collected, c) for c in infos])
        tracked = self._parallel(
            [partial(self._tracker_families, a, t) for a, t in trackers.items()]
        )
        merged = merge([*families, *tracked], summed=[metrics.CACHE_EVICTIONS.family])
        self._check_roles(merged, nodes)
        evictions = merged.get(metrics.CACHE_EVICTIONS.family)
        if evictions is not None:
            self._add_retired(evictions)
        sampler_families = [f for s in self._samplers.values() for f in s.collect()]
        merged.update(
            merge(
                f
                for f in sampler_families
                if f.name not in (metrics.CACHE_KEYS.family, metrics.CACHE_SIZE.family)
            )
        )
        if not topology.nodes:  # no node known yet: the seed is down, and says so
            up = merged[metrics.REDIS_UP.family] = metrics.REDIS_UP.new_family()
            up.add_metric([self.instance], 0.0)
        yield from merged.values()
        yield from self._per_type_sums()
        yield from self._topology_families(topology)

    def workers(self) -> list[KeyspaceSampler | EvictionTracker]:
        """The samplers and trackers running now (their health is the server's to
        serve, with its other workers': a registry holds a family name once)."""
        with self._lock:
            return [*self._samplers.values(), *self._trackers.values()]

    def _tracker_families(self, address: str, tracker: EvictionTracker) -> list[Metric]:
        families = list(tracker.collect())
        for family in families:
            if family.name == metrics.CACHE_EVICTIONS.family:
                self._last_evictions[address] = {
                    tuple(sorted(s.labels.items())): s.value
                    for s in family.samples
                    if s.name == metrics.CACHE_EVICTIONS.name
                }
        return families

    def _add_retired(self, evictions: Metric) -> None:
        """Add the counts of trackers since stopped, so the sums never go down."""
        totals = dict(self._retired)
        for sample in evictions.samples:
            labels = tuple(sorted(sample.labels.items()))
            totals[labels] = totals.get(labels, 0.0) + sample.value
        evictions.samples = []
        for labels, value in totals.items():
            evictions.add_sample(metrics.CACHE_EVICTIONS.name, dict(labels), value)

    def _check_roles(self, merged: dict[str, Metric], nodes: dict[str, ClusterNode]) -> None:
        """Mark the topology stale when a node did not answer or says it has another role."""
        up = merged.get(metrics.REDIS_UP.family)
        if up is not None and any(s.value == 0 for s in up.samples):
            self._stale = True
        info = merged.get(metrics.REDIS_INSTANCE_INFO.family)
        for sample in info.samples if info is not None else ():
            node = nodes.get(sample.labels.get("instance", ""))
            role = sample.labels.get("role")
            if node is not None and role and (role == "master") != (node.role == "master"):
                self._stale = True

    def _per_type_sums(self) -> Iterator[Metric]:
        """cache_keys and cache_size_bytes summed over shards, once every shard has an
        estimate (its sampler's latest, or the shard's last one)."""
        keys = metrics.CACHE_KEYS.new_family()
        size = metrics.CACHE_SIZE.new_family()
        shards = self._sampled()
        estimates = []
        for first_slot, address in shards.items():
            sampler = self._samplers.get(address)
            estimate = sampler.estimate if sampler is not None else None
            if estimate is not None:
                self._shard_estimates[first_slot] = estimate
            estimate = self._shard_estimates.get(first_slot)
            if estimate is not None:
                estimates.append(estimate)
        for first_slot in self._shard_estimates.keys() - shards.keys():
            del self._shard_estimates[first_slot]  # slots moved: that shard is gone
        if shards and len(estimates) == len(shards):
            sized = all(e.sized for e in estimates)
            for kind in self._slo.type_names:
                labels = metrics.CACHE_KEYS.label_values(layer=metrics.LAYER_REDIS, type=kind)
                keys.add_metric(labels, sum(e.keys.get(kind, 0.0) for e in estimates))
                if sized:
                    size.add_metric(labels, sum(e.size_bytes.get(kind, 0.0) for e in estimates))
        yield keys
        yield size

    def _topology_families(self, topology: Topology) -> Iterator[Metric]:
        by_id = {n.node_id: n for n in topology.nodes}
        node_info = metrics.REDIS_CLUSTER_NODE.new_family()
        for node in topology.nodes:
            master = by_id.get(node.master_id)
            node_info.add_metric(
                [node.address, node.role, master.address if master else "", node.state], 1.0
            )
        yield node_info
        counts = metrics.CLUSTER_NODES.new_family()
        for role in metrics.CLUSTER_ROLES:
            found = sum(n.role == role for n in topology.nodes)
            counts.add_metric([self.instance, role], float(found))
        yield counts
        discoveries = metrics.CLUSTER_DISCOVERIES.new_family()
        for result in ("ok", "error"):
            discoveries.add_metric([self.instance, result], float(self._discoveries[result]))
        yield discoveries
        dropped = metrics.CLUSTER_NODES_DROPPED.new_family()
        dropped.add_metric([self.instance], float(topology.dropped))
        yield dropped
