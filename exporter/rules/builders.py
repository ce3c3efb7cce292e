"""Pure steps from the SLO file to rule groups: SLIs → budgets → alerts → runbooks.

Every metric name, label name and fixed label value comes from
:mod:`exporter.metrics`; every objective, threshold and window from the SLO
file.  Each step returns data; nothing here writes files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta

from prometheus_client.utils import floatToGoString

from exporter import metrics as m
from exporter.rules import conventions as c
from exporter.rules.config import RuleConfig
from exporter.rules.model import Generated, Group, Rule, RuleFile, decimal, number
from exporter.rules.profiles import PRODUCTION, Profile
from exporter.rules.windows import (
    ADR_WINDOW,
    BurnTier,
    scaled_tiers,
    tiers_for_budget,
    window_pair,
)
from exporter.slo import SLO, format_duration

ADR_HIT_RATE_FOR = timedelta(minutes=10)
ADR_LATENCY_FOR = timedelta(minutes=5)


@dataclass(frozen=True)
class Context:
    """What every step reads: the SLO, the deployment config and the time profile."""

    slo: SLO
    config: RuleConfig
    profile: Profile = PRODUCTION

    def rng(self, window: timedelta) -> str:
        return format_duration(self.profile.range(window))

    def for_(self, duration: timedelta) -> timedelta:
        return self.profile.for_(duration)

    @property
    def min_rate(self) -> str:
        return number(self.slo.min_read_rate)


# --- PromQL helpers -----------------------------------------------------------------


def match(spec: m.MetricSpec, **labels: str) -> str:
    """``name="value"`` matchers, refusing a label the metric does not have."""
    for name in labels:
        if name not in spec.labels:
            raise ValueError(f"{spec.name} has no label {name!r} (labels: {spec.labels})")
    return ", ".join(f'{k}="{v}"' for k, v in labels.items())


def sel(name: str, *matchers: str) -> str:
    inner = ", ".join(x for x in matchers if x)
    return f"{name}{{{inner}}}"


def le_value(seconds: float) -> str:
    """The ``le`` label exactly as prometheus-client writes it (``0.01``)."""
    return str(floatToGoString(seconds))  # type: ignore[no-untyped-call]


def recording_windows(slo: SLO) -> tuple[timedelta, ...]:
    """Windows the alerts and dashboards read: ADR, every burn tier, the SLO window."""
    found = {ADR_WINDOW, slo.window}
    for tier in scaled_tiers(slo.window):
        found.update((tier.long, tier.short))
    return tuple(sorted(found))


# --- SLIs -------------------------------------------------------------------------------


def _client(ctx: Context, spec: m.MetricSpec, suffix: str = "", **labels: str) -> str:
    return sel(spec.name + suffix, ctx.config.app_selector, match(spec, **labels))


def sli_rules(ctx: Context) -> Group:
    """Reads, hit ratio (per type and overall) and the latency SLI, per window."""
    hits = _client(ctx, m.CACHE_HITS, layer=m.LAYER_REDIS)
    misses = _client(ctx, m.CACHE_MISSES, layer=m.LAYER_REDIS)
    lat = ctx.slo.latency
    count = _client(ctx, m.CACHE_LATENCY, "_count", layer=m.LAYER_REDIS, operation=lat.operation)
    good = sel(
        m.CACHE_LATENCY.name + "_bucket",
        ctx.config.app_selector,
        match(m.CACHE_LATENCY, layer=m.LAYER_REDIS, operation=lat.operation),
        f'le="{le_value(lat.threshold_seconds)}"',
    )
    all_type = (("type", m.TYPE_ALL),)
    rules: list[Rule] = []
    for w in recording_windows(ctx.slo):
        r = ctx.rng(w)
        by_type = (
            f"sum by (type) (rate({hits}[{r}]))",
            f"sum by (type) (rate({misses}[{r}]))",
        )
        overall = (f"sum(rate({hits}[{r}]))", f"sum(rate({misses}[{r}]))")
        calls = f"sum by (operation) (rate({count}[{r}]))"
        rules += [
            Rule(record=c.record_reads(w), expr=f"{by_type[0]}\n+\n{by_type[1]}"),
            Rule(record=c.record_reads(w), expr=f"{overall[0]}\n+\n{overall[1]}", labels=all_type),
            Rule(
                record=c.record_hit_ratio(w),
                expr=f"{by_type[0]}\n/\n({by_type[0]} + {by_type[1]})",
            ),
            Rule(
                record=c.record_hit_ratio(w),
                expr=f"{overall[0]}\n/\n({overall[0]} + {overall[1]})",
                labels=all_type,
            ),
            Rule(record=c.record_calls(w), expr=calls),
            Rule(
                record=c.record_latency_good(w),
                expr=f"sum by (operation) (rate({good}[{r}]))\n/\n{calls}",
            ),
        ]
    return Group(c.GROUP_SLI, tuple(rules))


def budget_rules(ctx: Context) -> Group:
    """Error budget remaining over the SLO window, per objective."""
    w = ctx.slo.window
    rules = [
        Rule(
            record=c.RECORD_BUDGET_REMAINING,
            expr=f'1 - (1 - {c.record_hit_ratio(w)}{{type="{t}"}}) / {number(1 - decimal(o))}',
            labels=(("slo", c.SLO_HIT_RATE), ("type", t)),
        )
        for t, o in ctx.slo.objectives.items()
    ]
    lat = ctx.slo.latency
    rules.append(
        Rule(
            record=c.RECORD_BUDGET_REMAINING,
            expr=(
                f'1 - (1 - {c.record_latency_good(w)}{{operation="{lat.operation}"}}) / '
                f"{number(1 - decimal(lat.objective))}"
            ),
            labels=(("slo", c.SLO_LATENCY), ("operation", lat.operation)),
        )
    )
    return Group(c.GROUP_BUDGET, tuple(rules))


# --- the ADR's alerts -------------------------------------------------------------------


def adr_alerts(ctx: Context) -> Group:
    """``LowCacheHitRate`` (overall and per type) and ``HighCacheLatency``, low-traffic safe."""
    w = ADR_WINDOW
    rules: list[Rule] = []
    for t, objective in ctx.slo.objectives.items():
        target = number(objective)
        what = "all reads" if t == m.TYPE_ALL else f"{t} reads"
        rules.append(
            Rule(
                alert=c.ALERT_LOW_HIT_RATE,
                expr=(
                    f'{c.record_hit_ratio(w)}{{type="{t}"}} < {target}\n'
                    f'and\n{c.record_reads(w)}{{type="{t}"}} >= {ctx.min_rate}'
                ),
                for_=ctx.for_(ADR_HIT_RATE_FOR),
                labels=(("severity", c.SEVERITY_TICKET), ("type", t)),
                annotations=(
                    ("summary", f"Cache hit rate of {what} below {percent(objective)}"),
                    (
                        "description",
                        f"The Redis hit rate of {what} over {c.window_name(w)} is "
                        "{{ $value | humanizePercentage }}, below the objective of "
                        f"{percent(objective)} for {format_duration(ADR_HIT_RATE_FOR)}.",
                    ),
                ),
            )
        )
    lat = ctx.slo.latency
    count = _client(ctx, m.CACHE_LATENCY, "_count", layer=m.LAYER_REDIS, operation=lat.operation)
    buckets = _client(ctx, m.CACHE_LATENCY, "_bucket", layer=m.LAYER_REDIS, operation=lat.operation)
    r = ctx.rng(w)
    threshold = format_duration(lat.threshold)
    rules.append(
        Rule(
            alert=c.ALERT_HIGH_LATENCY,
            expr=(
                f"histogram_quantile({number(lat.objective)}, "
                f"sum by (le, operation) (rate({buckets}[{r}])))\n"
                f"> {number(lat.threshold_seconds)}\n"
                f"and\nsum by (operation) (rate({count}[{r}])) >= {ctx.min_rate}"
            ),
            for_=ctx.for_(ADR_LATENCY_FOR),
            labels=(("severity", c.SEVERITY_TICKET), ("operation", lat.operation)),
            annotations=(
                (
                    "summary",
                    f"Cache {lat.operation.upper()} p{quantile_name(lat.objective)} "
                    f"above {threshold}",
                ),
                (
                    "description",
                    f"p{quantile_name(lat.objective)} of {lat.operation} calls over "
                    f"{c.window_name(w)} is {{{{ $value | humanizeDuration }}}}, above "
                    f"{threshold} for {format_duration(ADR_LATENCY_FOR)}.",
                ),
            ),
        )
    )
    return Group(c.GROUP_ADR, tuple(rules))


# --- multi-window, multi-burn-rate alerts ------------------------------------------------


def _burn_alert(
    ctx: Context,
    *,
    alert: str,
    tier: BurnTier,
    budget: str,
    ratio: Callable[[timedelta], str],
    volume: Callable[[timedelta], str],
    labels: tuple[tuple[str, str], ...],
    slo_text: str,
) -> Rule:
    long_r, short_r = ratio(tier.long), ratio(tier.short)
    factor = number(tier.factor)
    comment = None
    if tier.capped_from is not None:
        comment = (
            f"capped from {number(tier.capped_from)}x: {number(tier.capped_from)} x {budget} >= 1 "
            "can never fire"
        )
    return Rule(
        alert=alert,
        expr=(
            f"(1 - {long_r}) / {budget} > {factor}\n"
            f"and\n(1 - {short_r}) / {budget} > {factor}\n"
            f"and\n{volume(tier.short)} >= {ctx.min_rate}"
        ),
        for_=ctx.for_(tier.for_),
        labels=(
            ("severity", tier.severity),
            *labels,
            ("long_window", c.window_name(tier.long)),
            ("short_window", c.window_name(tier.short)),
        ),
        annotations=(
            (
                "summary",
                f"{slo_text}: error budget burning at over {factor}x ({window_pair(tier)})",
            ),
            (
                "description",
                f"{slo_text} is burning its {format_duration(ctx.slo.window)} error budget "
                '{{ $value | printf "%.2f" }} times as fast as it can sustain over the last '
                f"{c.window_name(tier.long)} (and above {factor}x over the last "
                f"{c.window_name(tier.short)}); at this rate the budget lasts "
                f"{format_duration(ctx.slo.window / float(tier.factor))}.",
            ),
        ),
        comment=comment,
    )


def burn_rate_alerts(ctx: Context, notes: list[str]) -> Group:
    """Page on 14.4x and 6x, ticket on 3x and 1x, per objective; uncapable tiers capped."""
    tiers = scaled_tiers(ctx.slo.window)
    rules: list[Rule] = []
    comments: list[str] = []

    def tiers_noting(what: str, objective: float) -> tuple[tuple[BurnTier, ...], str]:
        budget = 1 - decimal(objective)
        kept, why = tiers_for_budget(tiers, budget)
        for line in why:
            notes.append(f"{what}: {line}")
            comments.append(f"{what}: {line}")
        return kept, number(budget)

    for t, objective in ctx.slo.objectives.items():
        what = "all reads" if t == m.TYPE_ALL else f"{t} reads"
        kept, budget = tiers_noting(
            f"hit rate of {what} (objective {number(objective)})", objective
        )
        for tier in kept:
            rules.append(
                _burn_alert(
                    ctx,
                    alert=c.ALERT_HIT_RATE_BURN,
                    tier=tier,
                    budget=budget,
                    ratio=_selecting(c.record_hit_ratio, f'{{type="{t}"}}'),
                    volume=_selecting(c.record_reads, f'{{type="{t}"}}'),
                    labels=(("slo", c.SLO_HIT_RATE), ("type", t)),
                    slo_text=f"Hit rate of {what} (objective {percent(objective)})",
                )
            )
    lat = ctx.slo.latency
    threshold = format_duration(lat.threshold)
    kept, budget = tiers_noting(
        f"{lat.operation} latency (objective {number(lat.objective)})", lat.objective
    )
    op = f'{{operation="{lat.operation}"}}'
    for tier in kept:
        rules.append(
            _burn_alert(
                ctx,
                alert=c.ALERT_LATENCY_BURN,
                tier=tier,
                budget=budget,
                ratio=_selecting(c.record_latency_good, op),
                volume=_selecting(c.record_calls, op),
                labels=(("slo", c.SLO_LATENCY), ("operation", lat.operation)),
                slo_text=(
                    f"{lat.operation} calls within {threshold} (objective {percent(lat.objective)})"
                ),
            )
        )
    return Group(c.GROUP_BURN, tuple(rules), tuple(comments))


def _selecting(name_of: Callable[[timedelta], str], selector: str) -> Callable[[timedelta], str]:
    """A recorded series per window, with a fixed selector (``{type="session"}``)."""
    return lambda w: f"{name_of(w)}{selector}"


# --- operational alerts -------------------------------------------------------------------


def operational_alerts(ctx: Context) -> Group:
    """Redis and exporter health, memory, eviction surges, client errors, scrape errors."""
    cfg = ctx.config
    exp = cfg.exporter_selector
    r5 = ctx.rng(timedelta(minutes=5))
    r1h = ctx.rng(timedelta(hours=1))
    lat = m.CACHE_LATENCY
    calls = sel(lat.name + "_count", cfg.app_selector, match(lat, layer=m.LAYER_REDIS))
    errors = sel(m.CACHE_ERRORS.name, cfg.app_selector, match(m.CACHE_ERRORS, layer=m.LAYER_REDIS))
    evictions = sel(
        m.CACHE_EVICTIONS.name,
        exp,
        match(m.CACHE_EVICTIONS, layer=m.LAYER_REDIS, reason=m.REASON_MAXMEMORY),
    )
    used, maxmem = sel(m.REDIS_MEMORY_USED.name, exp), sel(m.REDIS_MEMORY_MAX.name, exp)
    skipped = sel(
        m.CACHE_ERRORS.name,
        cfg.app_selector,
        match(m.CACHE_ERRORS, layer=m.LAYER_REDIS, error=c.ERROR_CIRCUIT_OPEN),
    )
    ev_rate = f"sum by (type) (rate({evictions}[{r5}]))"
    reached = f"sum by (operation) (rate({calls}[{r5}]))"
    # attempts = calls that reached Redis (latency observed) + calls the open circuit
    # breaker skipped (only counted as circuit_open errors); without the skipped ones a
    # total outage reads as a few probes: above 100 % failing, or under the traffic guard
    call_rate = f"({reached}\n + (sum by (operation) (rate({skipped}[{r5}])) or {reached} * 0))"
    rules = [
        Rule(
            alert=c.ALERT_REDIS_DOWN,
            expr=f"{sel(m.REDIS_UP.name, exp)} == 0",
            for_=ctx.for_(timedelta(minutes=1)),
            labels=(("severity", c.SEVERITY_PAGE),),
            annotations=(
                ("summary", "Redis {{ $labels.instance }} is down"),
                (
                    "description",
                    "The exporter cannot reach Redis {{ $labels.instance }} "
                    f"({m.REDIS_UP.name} = {{{{ $value }}}}): every cache read falls "
                    "through to the source.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_EXPORTER_DOWN,
            expr=f"up{{{exp}}} == 0",
            for_=ctx.for_(timedelta(minutes=5)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                ("summary", "Cache exporter {{ $labels.instance }} cannot be scraped"),
                (
                    "description",
                    "Prometheus failed to scrape the cache exporter {{ $labels.instance }} "
                    "(up = {{ $value }}): Redis memory, eviction and health alerts are blind.",
                ),
            ),
        ),
    ]
    for spec, selector, component, source in (
        (m.REDIS_UP, exp, "exporter", "the cache exporter"),
        (lat, cfg.app_selector, "app", "the instrumented application"),
    ):
        name = spec.name + ("_count" if spec.kind == "histogram" else "")
        rules.append(
            Rule(
                alert=c.ALERT_METRICS_ABSENT,
                expr=f"absent({sel(name, selector)})",
                for_=ctx.for_(timedelta(minutes=10)),
                labels=(("severity", c.SEVERITY_TICKET), ("component", component)),
                annotations=(
                    ("summary", f"No {name} series from {source}"),
                    (
                        "description",
                        f"Prometheus has had no {name} series matching {selector} for "
                        f"{format_duration(timedelta(minutes=10))} (absent = {{{{ $value }}}}): "
                        "the target is missing from service discovery or renamed.",
                    ),
                ),
            )
        )
    rules += [
        Rule(
            alert=c.ALERT_MEMORY_NEAR_MAX,
            expr=f"{used}\n/\n({maxmem} > 0)\n> {number(cfg.memory_used_ratio_max)}",
            for_=ctx.for_(timedelta(minutes=15)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                ("summary", "Redis {{ $labels.instance }} memory near maxmemory"),
                (
                    "description",
                    "Redis {{ $labels.instance }} uses {{ $value | humanizePercentage }} of "
                    f"maxmemory (threshold {percent(float(cfg.memory_used_ratio_max))}): "
                    "it is evicting or about to.",
                ),
            ),
            comment="maxmemory 0 means unlimited: such instances are filtered out, not divided by",
        ),
        Rule(
            alert=c.ALERT_EVICTION_SURGE,
            expr=(
                f"{ev_rate} > {number(cfg.eviction_rate_per_second_min)}\n"
                f"and\n{ev_rate}\n> {number(cfg.eviction_surge_factor)} * "
                f"sum by (type) (rate({evictions}[{r1h}]))"
            ),
            for_=ctx.for_(timedelta(minutes=5)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                ("summary", "Eviction surge for {{ $labels.type }} keys"),
                (
                    "description",
                    "Redis evicts {{ $value | humanize }} {{ $labels.type }} keys per second "
                    f"(over {c.window_name(timedelta(minutes=5))}), more than "
                    f"{number(cfg.eviction_surge_factor)}x its average over the last hour.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_CLIENT_ERRORS,
            expr=(
                f"sum by (operation) (rate({errors}[{r5}]))\n/\n{call_rate}\n"
                f"> {number(cfg.client_error_ratio_max)}\n"
                f"and\n{call_rate} >= {ctx.min_rate}"
            ),
            for_=ctx.for_(timedelta(minutes=5)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                ("summary", "Cache {{ $labels.operation }} calls failing"),
                (
                    "description",
                    "{{ $value | humanizePercentage }} of cache {{ $labels.operation }} calls "
                    f"failed over {c.window_name(timedelta(minutes=5))} (threshold "
                    f"{percent(float(cfg.client_error_ratio_max))}); callers were served from "
                    "the source.",
                ),
            ),
        ),
        Rule(
            alert=c.ALERT_SCRAPE_ERRORS,
            # per minute: a scrape fails at most once per scrape interval, and a
            # per-second rate reads as "16.67m" (milli) in the description
            expr=(
                f"sum by (instance) (rate({sel(m.EXPORTER_SCRAPE_ERRORS.name, exp)}[{r5}])) "
                "* 60 > 0"
            ),
            for_=ctx.for_(timedelta(minutes=10)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                ("summary", "Cache exporter fails to read Redis {{ $labels.instance }}"),
                (
                    "description",
                    "The exporter's scrapes of Redis {{ $labels.instance }} fail "
                    "{{ $value | humanize }} times per minute (over "
                    f"{c.window_name(timedelta(minutes=5))}): redis_* and per-type metrics "
                    "are stale.",
                ),
            ),
        ),
    ]
    return Group(c.GROUP_OPERATIONAL, tuple(rules))


# --- cross-cutting passes and the chain -------------------------------------------------------


def with_runbooks(group: Group, config: RuleConfig) -> Group:
    """Add ``runbook_url`` to every alert (one pass, as the mixins do)."""
    return replace(
        group,
        rules=tuple(
            r.with_annotation("runbook_url", config.runbook_url(r.alert)) if r.alert else r
            for r in group.rules
        ),
    )


def generate_rules(
    slo: SLO, config: RuleConfig | None = None, profile: Profile = PRODUCTION
) -> Generated:
    """The whole chain: SLO file → rule files (data) and notes on what was adapted."""
    ctx = Context(slo, config or RuleConfig(), profile)
    notes: list[str] = []
    alerts = [adr_alerts(ctx), burn_rate_alerts(ctx, notes), operational_alerts(ctx)]
    alerts = [with_runbooks(g, ctx.config) for g in alerts]
    files = (
        RuleFile(c.FILE_RECORDINGS, (sli_rules(ctx), budget_rules(ctx))),
        RuleFile(c.FILE_SLO_ALERTS, (alerts[0], alerts[1])),
        RuleFile(c.FILE_OPERATIONAL, (alerts[2],)),
    )
    return Generated(files, notes)


def percent(ratio: float) -> str:
    """``0.95`` → ``95%`` (exact, for summaries)."""
    return f"{number(decimal(ratio) * 100)}%"


def quantile_name(objective: float) -> str:
    """``0.99`` → ``99``, ``0.999`` → ``99.9``."""
    return number(decimal(objective) * 100)
