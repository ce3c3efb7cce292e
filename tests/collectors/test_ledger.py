"""The eviction ledger's invariants: monotonic, sums to INFO, nothing counted twice."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.collectors._ledger import EvictionLedger
from exporter.metrics import REASON_EXPIRED, REASON_MAXMEMORY, TYPE_UNATTRIBUTED

TYPES = ("session", "user", "other")
R = REASON_MAXMEMORY


def _ledger() -> EvictionLedger:
    return EvictionLedger((REASON_MAXMEMORY, REASON_EXPIRED), TYPES)


def _reconcile(ledger: EvictionLedger, run: str, evicted: int, *, complete: bool = True) -> None:
    ledger.reconcile(run, {REASON_MAXMEMORY: evicted, REASON_EXPIRED: 0}, complete=complete)


def test_events_before_the_first_read_are_unattributed_and_notified_ones_attributed() -> None:
    ledger = _ledger()
    ledger.notify("a", R, "user")
    _reconcile(ledger, "a", 5)  # 4 evictions happened before we subscribed
    assert ledger.published[R] == {"session": 0, "user": 1, "other": 0, TYPE_UNATTRIBUTED: 4}


def test_notification_arriving_after_the_info_that_counted_it_is_not_counted_twice() -> None:
    ledger = _ledger()
    _reconcile(ledger, "a", 0)
    ledger.notify("a", R, "session")  # event 1, delivered in time
    ledger.notify("a", R, "user")  # event 2 happens after the INFO read below
    _reconcile(ledger, "a", 1)
    assert ledger.published[R] == {"session": 1, "user": 0, "other": 0, TYPE_UNATTRIBUTED: 0}
    assert ledger.pending(R) == 1
    _reconcile(ledger, "a", 2)
    assert ledger.published[R] == {"session": 1, "user": 1, "other": 0, TYPE_UNATTRIBUTED: 0}


def test_incomplete_reconcile_holds_the_gap_back_instead_of_guessing() -> None:
    ledger = _ledger()
    _reconcile(ledger, "a", 0)
    _reconcile(ledger, "a", 3, complete=False)  # notifications may still be in flight
    assert sum(ledger.published[R].values()) == 0
    for kind in ("user", "user", "other"):
        ledger.notify("a", R, kind)
    _reconcile(ledger, "a", 3)
    assert ledger.published[R] == {"session": 0, "user": 2, "other": 1, TYPE_UNATTRIBUTED: 0}


def test_restart_starts_a_new_baseline_and_keeps_late_events_of_the_old_run() -> None:
    ledger = _ledger()
    _reconcile(ledger, "a", 10)
    ledger.notify("a", R, "user")  # counted by run a after our last read of it
    _reconcile(ledger, "b", 2)  # restarted: INFO counts from 0 again
    assert ledger.cumulative[R] == 10 + 1 + 2
    assert ledger.published[R] == {"session": 0, "user": 1, "other": 0, TYPE_UNATTRIBUTED: 12}


def test_counter_reset_without_restart_is_a_new_baseline() -> None:
    ledger = _ledger()
    _reconcile(ledger, "a", 10)
    _reconcile(ledger, "a", 3)  # CONFIG RESETSTAT
    assert ledger.cumulative[R] == 13
    assert ledger.published[R][TYPE_UNATTRIBUTED] == 13


@dataclass
class _World:
    """A model of one Redis address: runs, its evicted_keys counter, in-flight notifications."""

    run: int = 0
    raw: int = 0
    subscribed: bool = True
    inflight: deque[tuple[str, str]] = field(default_factory=deque)
    happened: Counter[str] = field(default_factory=Counter)
    lossy: bool = False

    def deliver(self, ledger: EvictionLedger, count: int) -> None:
        for _ in range(min(count, len(self.inflight))):
            run, kind = self.inflight.popleft()
            ledger.notify(run, R, kind)


_OPS = st.one_of(
    st.tuples(st.just("event"), st.sampled_from(TYPES)),
    st.tuples(st.just("deliver"), st.integers(0, 5)),
    st.tuples(st.just("drop"), st.none()),
    st.tuples(st.just("resubscribe"), st.none()),
    st.tuples(st.just("restart"), st.none()),
    st.tuples(st.just("reconcile"), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5), st.lists(_OPS, max_size=60))
def test_ledger_invariants_hold_for_any_interleaving(
    preexisting: int, ops: list[tuple[str, object]]
) -> None:
    world = _World(raw=preexisting)
    ledger = _ledger()
    previous = ledger.snapshot()
    runs_total = preexisting  # every event Redis ever counted, over all runs
    for op, arg in ops:
        if op == "event":
            kind = str(arg)
            world.raw += 1
            runs_total += 1
            world.happened[kind] += 1
            if world.subscribed:
                world.inflight.append((f"run{world.run}", kind))
            else:
                world.lossy = True
        elif op == "deliver":
            world.deliver(ledger, int(str(arg)))
        elif op == "drop":
            world.lossy = world.lossy or bool(world.inflight)
            world.inflight.clear()
            world.subscribed = False
        elif op == "resubscribe":
            world.subscribed = True
        elif op == "restart":
            world.deliver(ledger, len(world.inflight))  # the socket's buffer before EOF
            world.run += 1
            world.raw = 0
            world.subscribed = False
            world.lossy = True
        else:
            barrier = bool(arg)
            if barrier:
                world.deliver(ledger, len(world.inflight))
            complete = barrier or not world.subscribed or not world.inflight
            ledger.reconcile(
                f"run{world.run}", {R: world.raw, REASON_EXPIRED: 0}, complete=complete
            )
            now = ledger.snapshot()
            for kind in ledger.types:
                assert now[R][kind] >= previous[R][kind], "a counter went down"
            for kind in TYPES:
                assert now[R][kind] <= ledger.received[R][kind], "attributed more than notified"
            total = sum(now[R].values())
            assert total <= ledger.cumulative[R] <= runs_total, "counted more than happened"
            if complete:
                assert total == ledger.cumulative[R]
            if world.run == 0:
                assert ledger.cumulative[R] == world.raw, "does not match INFO"
            previous = now
    # quiescent: deliver everything, reconcile with a barrier
    world.deliver(ledger, len(world.inflight))
    ledger.reconcile(f"run{world.run}", {R: world.raw, REASON_EXPIRED: 0}, complete=True)
    final = ledger.snapshot()[R]
    assert sum(final.values()) == ledger.cumulative[R]
    if not world.lossy:
        assert {k: final[k] for k in TYPES} == {k: world.happened[k] for k in TYPES}
        assert final[TYPE_UNATTRIBUTED] == preexisting
