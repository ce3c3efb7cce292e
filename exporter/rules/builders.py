"""Pure steps from the SLO file to rule groups: SLIs → budgets → alerts → runbooks.

Every SLI and budget expression comes from :mod:`exporter.sli`; every other
metric name, label name and fixed label value from :mod:`exporter.metrics`;
every objective, threshold and window from the SLO file.  Each step returns
data (each alert also carries its objective and tier, see :class:`Rule`);
nothing here writes files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from exporter import metrics as m
from exporter import sli
from exporter.rules import conventions as c
from exporter.rules.config import RuleConfig
from exporter.rules.model import Generated, Group, Labels, Rule, RuleFile, decimal, number
from exporter.rules.profiles import PRODUCTION, Profile
from exporter.rules.topology import topology_alerts
from exporter.rules.windows import (
    ADR_WINDOW,
    BASE_WINDOW,
    RECORDED_FROM,
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

    @property
    def app(self) -> str:
        """Selects the service's instrumented application (its ``cache_*`` series)."""
        return self.slo.service.app_selector

    @property
    def exp(self) -> str:
        """Selects the exporter(s) of the service's Redis."""
        return self.slo.service.exporter_selector

    def by(self, *labels: str) -> tuple[str, ...]:
        """Aggregation labels: the service's placement labels, then ``labels``."""
        return (*self.slo.service.group_by, *labels)


def recording_windows(slo: SLO) -> tuple[timedelta, ...]:
    """Windows the alerts and dashboards read: ADR, every burn tier, the SLO window."""
    found = {ADR_WINDOW, slo.window}
    for tier in scaled_tiers(slo.window):
        found.update((tier.long, tier.short))
    return tuple(sorted(found))


# --- SLIs -------------------------------------------------------------------------------


def raw_windows(slo: SLO) -> tuple[timedelta, ...]:
    """Windows measured over the raw counters: shorter than :data:`RECORDED_FROM`, and
    the base."""
    return tuple(w for w in recording_windows(slo) if w < RECORDED_FROM or w == BASE_WINDOW)


def long_windows(slo: SLO) -> tuple[timedelta, ...]:
    """Windows added up from the base window's recordings."""
    return tuple(w for w in recording_windows(slo) if w not in raw_windows(slo))


def sli_rules(ctx: Context) -> Group:
    """Reads, hit ratio (per type and overall) and the latency SLI over the raw counters,
    per short window; for the base window also hits and good calls, which the long
    windows add up."""
    app, lat = ctx.app, ctx.slo.latency
    redis, lines = m.LAYER_REDIS, sli.LINES
    by_type, by_all, by_op = ctx.by("type"), ctx.by(), ctx.by("operation")
    all_type = (("type", m.TYPE_ALL),)
    op, threshold = lat.operation, lat.threshold_seconds
    rules: list[Rule] = []
    for w in raw_windows(ctx.slo):
        r = ctx.rng(w)
        reads, ratio = c.record_reads(w), c.record_hit_ratio(w)
        if w == BASE_WINDOW:
            rules += [
                Rule(record=c.record_hits(w), expr=sli.hits(app, r, layer=redis, by=by_type)),
                Rule(
                    record=c.record_hits(w),
                    expr=sli.hits(app, r, layer=redis, by=by_all),
                    labels=all_type,
                ),
                Rule(
                    record=c.record_latency_good_calls(w),
                    expr=sli.latency_good(
                        app, r, operation=op, threshold_seconds=threshold, by=by_op
                    ),
                ),
            ]
        rules += [
            Rule(record=reads, expr=sli.reads(app, r, layer=redis, by=by_type, layout=lines)),
            Rule(
                record=reads,
                expr=sli.reads(app, r, layer=redis, by=by_all, layout=lines),
                labels=all_type,
            ),
            Rule(
                record=c.record_calls(w),
                expr=sli.calls(app, r, layer=redis, operation=lat.operation, by=by_op),
            ),
        ]
        if w != BASE_WINDOW:  # the base window's ratios divide its recordings (next group)
            rules += [
                Rule(
                    record=ratio,
                    expr=sli.hit_ratio(app, r, layer=redis, by=by_type, layout=lines),
                ),
                Rule(
                    record=ratio,
                    expr=sli.hit_ratio(app, r, layer=redis, by=by_all, layout=lines),
                    labels=all_type,
                ),
                Rule(
                    record=c.record_latency_good(w),
                    expr=sli.latency_good_ratio(
                        app, r, operation=op, threshold_seconds=threshold, by=by_op, layout=lines
                    ),
                ),
            ]
        rules += _layer_sli_rules(ctx, w) + _api_sli_rules(ctx, w)
    return Group(c.GROUP_SLI, tuple(rules))


def layer_scope(ctx: Context, layer: str) -> str:
    """Where a layer's counters come from: the app's middleware (browser) or the exporter
    (the CDN logs, PostgreSQL)."""
    return ctx.app if layer == m.LAYER_BROWSER else ctx.exp


def _layer_sli_rules(ctx: Context, w: timedelta) -> list[Rule]:
    """Reads and hit ratio of each layer with objectives, by type (plus ``type="all"`` when
    the layer has an overall objective); for the base window also hits."""
    r, lines = ctx.rng(w), sli.LINES
    rules: list[Rule] = []
    for layer, types in ctx.slo.layers.items():
        scope = layer_scope(ctx, layer)
        groupings: list[tuple[tuple[str, ...], Labels]] = [(ctx.by("type"), (("layer", layer),))]
        if m.TYPE_ALL in types:
            groupings.append((ctx.by(), (("layer", layer), ("type", m.TYPE_ALL))))
        for by, labels in groupings:
            if w == BASE_WINDOW:
                rules.append(
                    Rule(
                        record=c.record_layer_hits(w),
                        expr=sli.hits(scope, r, layer=layer, by=by),
                        labels=labels,
                    )
                )
            rules.append(
                Rule(
                    record=c.record_layer_reads(w),
                    expr=sli.reads(scope, r, layer=layer, by=by, layout=lines),
                    labels=labels,
                )
            )
            if w != BASE_WINDOW:
                rules.append(
                    Rule(
                        record=c.record_layer_hit_ratio(w),
                        expr=sli.hit_ratio(scope, r, layer=layer, by=by, layout=lines),
                        labels=labels,
                    )
                )
    return rules


def _api_sli_rules(ctx: Context, w: timedelta) -> list[Rule]:
    """The API objective's requests and good ratio; for the base window also good requests."""
    api = ctx.slo.api
    if api is None:
        return []
    r, by, labels = ctx.rng(w), ctx.by(), (("cached", api.cached),)
    rules = []
    if w == BASE_WINDOW:
        rules.append(
            Rule(
                record=c.record_api_good(w),
                expr=sli.api_good(
                    ctx.app,
                    r,
                    threshold_seconds=api.threshold_seconds,
                    cached=api.cached,
                    routes=api.routes,
                    by=by,
                ),
                labels=labels,
            )
        )
    rules.append(
        Rule(
            record=c.record_api_requests(w),
            expr=sli.api_requests(ctx.app, r, cached=api.cached, routes=api.routes, by=by),
            labels=labels,
        )
    )
    if w == BASE_WINDOW:
        return rules
    return [
        *rules,
        Rule(
            record=c.record_api_good_ratio(w),
            expr=sli.api_good_ratio(
                ctx.app,
                r,
                threshold_seconds=api.threshold_seconds,
                cached=api.cached,
                routes=api.routes,
                by=by,
                layout=sli.LINES,
            ),
            labels=labels,
        ),
    ]


def long_sli_rules(ctx: Context) -> Group:
    """The base window's ratios and every window from :data:`RECORDED_FROM` on, all from
    this service's base recordings.

    Their cost is the number of recorded series (types x placements) times the
    window's evaluations, whatever the number of pods.  They trail the base
    recordings by at most one evaluation interval (a separate group).
    """
    base, svc = BASE_WINDOW, {"service": ctx.slo.service.name}
    hits = sli.recorded(c.record_hits(base), **svc)
    reads = sli.recorded(c.record_reads(base), **svc)
    good = sli.recorded(c.record_latency_good_calls(base), **svc)
    calls = sli.recorded(c.record_calls(base), **svc)
    # the base window's ratios: its recordings divided (reading the raw counters once)
    rules: list[Rule] = [
        Rule(record=c.record_hit_ratio(base), expr=sli.ratio_of(hits, reads, sli.LINES)),
        Rule(record=c.record_latency_good(base), expr=sli.ratio_of(good, calls, sli.LINES)),
    ]
    if ctx.slo.layers:
        rules.append(
            Rule(
                record=c.record_layer_hit_ratio(base),
                expr=sli.ratio_of(
                    sli.recorded(c.record_layer_hits(base), **svc),
                    sli.recorded(c.record_layer_reads(base), **svc),
                    sli.LINES,
                ),
            )
        )
    if ctx.slo.api is not None:
        rules.append(
            Rule(
                record=c.record_api_good_ratio(base),
                expr=sli.ratio_of(
                    sli.recorded(c.record_api_good(base), **svc),
                    sli.recorded(c.record_api_requests(base), **svc),
                    sli.LINES,
                ),
            )
        )
    for w in long_windows(ctx.slo):
        r = ctx.rng(w)
        rules += [
            Rule(record=c.record_reads(w), expr=sli.rate_over_time(reads, r)),
            Rule(record=c.record_hit_ratio(w), expr=sli.ratio_over_time(hits, reads, r, sli.LINES)),
            Rule(record=c.record_calls(w), expr=sli.rate_over_time(calls, r)),
            Rule(
                record=c.record_latency_good(w),
                expr=sli.ratio_over_time(good, calls, r, sli.LINES),
            ),
        ]
        if ctx.slo.layers:  # one rule per window covers every layer (they carry `layer`)
            layer_hits = sli.recorded(c.record_layer_hits(base), **svc)
            layer_reads = sli.recorded(c.record_layer_reads(base), **svc)
            rules += [
                Rule(record=c.record_layer_reads(w), expr=sli.rate_over_time(layer_reads, r)),
                Rule(
                    record=c.record_layer_hit_ratio(w),
                    expr=sli.ratio_over_time(layer_hits, layer_reads, r, sli.LINES),
                ),
            ]
        if ctx.slo.api is not None:
            api_good = sli.recorded(c.record_api_good(base), **svc)
            api_requests = sli.recorded(c.record_api_requests(base), **svc)
            rules += [
                Rule(record=c.record_api_requests(w), expr=sli.rate_over_time(api_requests, r)),
                Rule(
                    record=c.record_api_good_ratio(w),
                    expr=sli.ratio_over_time(api_good, api_requests, r, sli.LINES),
                ),
            ]
    return Group(c.GROUP_SLI_LONG, tuple(rules))


def _layer_label(o: sli.Objective) -> tuple[tuple[str, str], ...]:
    return (("layer", o.layer),) if o.layer else ()


def budget_rules(ctx: Context) -> Group:
    """Error budget remaining over the SLO window, per objective."""
    w = ctx.slo.window
    return Group(
        c.GROUP_BUDGET,
        tuple(
            Rule(
                record=c.RECORD_BUDGET_REMAINING,
                expr=sli.budget_left(o.recorded(w), o.target),
                labels=(("slo", o.slo_label), *_layer_label(o), (o.label, o.value)),
                objective=o,
            )
            for o in sli.objectives(ctx.slo)
        ),
    )


# --- the ADR's alerts -------------------------------------------------------------------


def adr_alerts(ctx: Context) -> Group:
    """``LowCacheHitRate`` (overall and per type) and ``HighCacheLatency``, low-traffic safe."""
    w = ADR_WINDOW
    rules: list[Rule] = []
    objectives = sli.objectives(ctx.slo)
    (latency,) = (o for o in objectives if o.kind == sli.LATENCY)
    for o in (o for o in objectives if o.kind == sli.HIT_RATE):
        t, objective = o.value, o.target
        what = "all reads" if t == m.TYPE_ALL else f"{t} reads"
        rules.append(
            Rule(
                alert=c.ALERT_LOW_HIT_RATE,
                expr=(
                    f"{o.recorded(w)} < {number(objective)}\n"
                    f"and\n{o.recorded_volume(w)} >= {ctx.min_rate}"
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
                objective=o,
                window=w,
            )
        )
    lat = ctx.slo.latency
    app, r = ctx.app, ctx.rng(w)
    redis, op = m.LAYER_REDIS, lat.operation
    quantile = sli.latency_quantile(
        number(lat.objective), app, r, layer=redis, operation=op, by=ctx.by("operation")
    )
    threshold = format_duration(lat.threshold)
    rules.append(
        Rule(
            alert=c.ALERT_HIGH_LATENCY,
            expr=(
                f"{quantile}\n"
                f"> {number(lat.threshold_seconds)}\n"
                f"and\n{sli.calls(app, r, layer=redis, operation=op, by=ctx.by('operation'))} "
                f">= {ctx.min_rate}"
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
            objective=latency,
            window=w,
        )
    )
    return Group(c.GROUP_ADR, tuple(rules))


# --- multi-window, multi-burn-rate alerts ------------------------------------------------


def _burn_alert(
    ctx: Context, *, alert: str, tier: BurnTier, objective: sli.Objective, slo_text: str
) -> Rule:
    o = objective
    budget = number(sli.error_budget(o.target))
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
            f"{sli.burn_rate(o.recorded(tier.long), o.target)} > {factor}\n"
            f"and\n{sli.burn_rate(o.recorded(tier.short), o.target)} > {factor}\n"
            f"and\n{o.recorded_volume(tier.short)} >= {ctx.min_rate}"
        ),
        for_=ctx.for_(tier.for_),
        labels=(
            ("severity", tier.severity),
            ("slo", o.slo_label),
            *_layer_label(o),
            (o.label, o.value),
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
        objective=o,
        tier=tier,
        window=tier.long,
    )


def burn_rate_alerts(ctx: Context, notes: list[str]) -> Group:
    """Page on 14.4x and 6x, ticket on 3x and 1x, per objective; uncapable tiers capped."""
    tiers = scaled_tiers(ctx.slo.window)
    rules: list[Rule] = []
    comments: list[str] = []

    def tiers_noting(what: str, objective: float) -> tuple[BurnTier, ...]:
        kept, why = tiers_for_budget(tiers, sli.error_budget(objective))
        for line in why:
            notes.append(f"{what}: {line}")
            comments.append(f"{what}: {line}")
        return kept

    objectives = sli.objectives(ctx.slo)
    (latency,) = (o for o in objectives if o.kind == sli.LATENCY)
    for o in (o for o in objectives if o.kind in (sli.HIT_RATE, sli.LAYER_HIT_RATE)):
        what = "all reads" if o.value == m.TYPE_ALL else f"{o.value} reads"
        if o.layer:  # the Redis objectives' texts stay as they were
            what = f"{o.layer} {what}"
        for tier in tiers_noting(f"hit rate of {what} (objective {number(o.target)})", o.target):
            rules.append(
                _burn_alert(
                    ctx,
                    alert=c.ALERT_HIT_RATE_BURN,
                    tier=tier,
                    objective=o,
                    slo_text=f"Hit rate of {what} (objective {percent(o.target)})",
                )
            )
    lat = ctx.slo.latency
    threshold = format_duration(lat.threshold)
    kept = tiers_noting(
        f"{lat.operation} latency (objective {number(lat.objective)})", lat.objective
    )
    for tier in kept:
        rules.append(
            _burn_alert(
                ctx,
                alert=c.ALERT_LATENCY_BURN,
                tier=tier,
                objective=latency,
                slo_text=(
                    f"{lat.operation} calls within {threshold} (objective {percent(lat.objective)})"
                ),
            )
        )
    for o in (o for o in objectives if o.kind == sli.API_LATENCY):
        which = {"true": "cached ", "false": "uncached "}.get(o.value, "")
        text = f"{which}API requests within {format_duration(o.threshold)}"
        for tier in tiers_noting(f"{text} (objective {number(o.target)})", o.target):
            rules.append(
                _burn_alert(
                    ctx,
                    alert=c.ALERT_API_LATENCY_BURN,
                    tier=tier,
                    objective=o,
                    slo_text=f"{text[0].upper()}{text[1:]} (objective {percent(o.target)})",
                )
            )
    return Group(c.GROUP_BURN, tuple(rules), tuple(comments))


# --- operational alerts -------------------------------------------------------------------


def operational_alerts(ctx: Context) -> Group:
    """Redis and exporter health, memory, eviction surges, client errors, scrape errors."""
    cfg = ctx.config
    exp, app = ctx.exp, ctx.app
    r5 = ctx.rng(timedelta(minutes=5))
    hour = timedelta(hours=1)
    r1h = ctx.rng(hour)
    evictions = sli.selector(m.CACHE_EVICTIONS, exp, layer=m.LAYER_REDIS, reason=m.REASON_MAXMEMORY)
    used, maxmem = sli.selector(m.REDIS_MEMORY_USED, exp), sli.selector(m.REDIS_MEMORY_MAX, exp)
    by_type, by_op = ctx.by("type"), ctx.by("operation")
    ev_rate = sli.sum_rate(evictions, r5, by_type)
    call_rate = sli.call_attempts(app, r5, by=by_op)
    scrape_errors = sli.selector(m.EXPORTER_SCRAPE_ERRORS, exp)
    rules = [
        Rule(
            alert=c.ALERT_REDIS_DOWN,
            expr=f"{sli.selector(m.REDIS_UP, exp)} == 0",
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
        (m.CACHE_LATENCY, app, "app", "the instrumented application"),
    ):
        suffix = "_count" if spec.kind == "histogram" else ""
        name = spec.name + suffix
        rules.append(
            Rule(
                alert=c.ALERT_METRICS_ABSENT,
                expr=f"absent({sli.selector(spec, selector, suffix=suffix)})",
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
                absent=(name, selector),
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
            window=hour,
            expr=(
                f"{ev_rate} > {number(cfg.eviction_rate_per_second_min)}\n"
                f"and\n{ev_rate}\n> {number(cfg.eviction_surge_factor)} * "
                f"{sli.sum_rate(evictions, r1h, by_type)}\n"
                f"and\nsum by ({', '.join(by_type)}) ({evictions} offset {r1h})"
            ),
            for_=ctx.for_(timedelta(minutes=5)),
            labels=(("severity", c.SEVERITY_TICKET),),
            comment=(
                "the offset term: only types evicted from an hour ago on, so a young series "
                "(new deployment, new type, Prometheus without history) has a full hour to "
                "compare with, not an under-read one"
            ),
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
            window=timedelta(minutes=5),
            expr=(
                f"{sli.client_error_ratio(app, r5, by=by_op)}\n"
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
            window=timedelta(minutes=5),
            # per minute: a scrape fails at most once per scrape interval, and a
            # per-second rate reads as "16.67m" (milli) in the description
            expr=(f"{sli.sum_rate(scrape_errors, r5, ctx.by('instance'))} * 60 > 0"),
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
        Rule(
            alert=c.ALERT_COLLECTOR_DOWN,
            expr=f"{sli.selector(m.COLLECTOR_UP, exp)} == 0",
            for_=ctx.for_(timedelta(minutes=15)),
            labels=(("severity", c.SEVERITY_TICKET),),
            annotations=(
                (
                    "summary",
                    "Cache exporter's {{ $labels.collector }} for {{ $labels.instance }} "
                    "keeps failing",
                ),
                (
                    "description",
                    "The exporter's background {{ $labels.collector }} for Redis "
                    "{{ $labels.instance }} has not recovered for "
                    f"{format_duration(timedelta(minutes=15))} ({m.COLLECTOR_UP.name} = "
                    "{{ $value }}): it restarts with backoff, and its per-type series "
                    f"are stale. {m.COLLECTOR_LAST_ERROR.name} names the error class.",
                ),
            ),
        ),
        policy_violations_alert(ctx),
    ]
    return Group(c.GROUP_OPERATIONAL, tuple(rules))


#: how far back CacheHttpPolicyViolations looks, and how long the violations must go on
POLICY_WINDOW = timedelta(hours=1)
POLICY_FOR = timedelta(minutes=5)


def policy_violations_alert(ctx: Context) -> Rule:
    """A ticket when the app's responses break their path class's Cache-Control policy
    (ADR-004's browser layer, counted by exporter.asgi): a misconfigured header is a fact,
    not noise, so any violation in the last hour is worth a ticket."""
    hour = ctx.rng(POLICY_WINDOW)
    by = ctx.by("type", "rule")
    violations = sli.selector(m.CACHE_POLICY_VIOLATIONS, ctx.app)
    return Rule(
        alert=c.ALERT_HTTP_POLICY_VIOLATIONS,
        window=POLICY_WINDOW,
        expr=f"{sli.sum_increase(violations, hour, by)} > 0",
        for_=ctx.for_(POLICY_FOR),
        labels=(("severity", c.SEVERITY_TICKET),),
        annotations=(
            (
                "summary",
                "{{ $labels.type }} responses break their Cache-Control policy "
                "({{ $labels.rule }})",
            ),
            (
                "description",
                "About {{ $value | humanize }} {{ $labels.type }} responses over the last "
                f"{c.window_name(POLICY_WINDOW)} broke the {{{{ $labels.rule }}}} rule of their "
                "path class's Cache-Control policy (ADR-004): browsers and the CDN cache them "
                "wrongly or not at all.",
            ),
        ),
    )


# --- cross-cutting passes and the chain -------------------------------------------------------


def with_service(group: Group, slo: SLO) -> Group:
    """Add ``service`` to every rule's labels, so a whole platform shares one ruler."""
    label = ("service", slo.service.name)
    return replace(
        group,
        rules=tuple(
            r if label in r.labels else replace(r, labels=(label, *r.labels)) for r in group.rules
        ),
    )


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
    alerts.append(topology_alerts(ctx))
    alerts = [with_service(with_runbooks(g, ctx.config), slo) for g in alerts]
    recordings = [with_service(g, slo) for g in (sli_rules(ctx), long_sli_rules(ctx))]
    files = (
        RuleFile(c.FILE_RECORDINGS, (*recordings, with_service(budget_rules(ctx), slo))),
        RuleFile(c.FILE_SLO_ALERTS, (alerts[0], alerts[1])),
        RuleFile(c.FILE_OPERATIONAL, (alerts[2],)),
        RuleFile(c.FILE_TOPOLOGY, (alerts[3],)),
    )
    return Generated(files, notes)


def percent(ratio: float) -> str:
    """``0.95`` → ``95%`` (exact, for summaries)."""
    return f"{number(decimal(ratio) * 100)}%"


def quantile_name(objective: float) -> str:
    """``0.99`` → ``99``, ``0.999`` → ``99.9``."""
    return number(decimal(objective) * 100)
