"""exporter.sli is the only place SLI and error-budget PromQL is written.

The check reads every module of the package but ``exporter/sli.py`` and fails on

* a telltale fragment in the source text: ``rate(<SLI metric>``,
  ``increase(<SLI metric>``, the latency histogram's ``_bucket`` series or an SLI
  recording name, each derived from :mod:`exporter.metrics` and
  :mod:`exporter.rules.conventions` (so a rename keeps the check honest);
* PromQL assembled by hand: one function (or the module's top level) that both
  names an SLI metric or SLI recording (``m.CACHE_HITS``, ``record_hit_ratio``)
  and holds a string with a PromQL operator shape (``rate(``, ``histogram_quantile(``,
  ``) / (``, ``(1 - ``): the way the three copies this module replaced were built.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import exporter
from exporter import metrics as m
from exporter import sli
from exporter.rules import conventions as c
from exporter.slo import load_slo, parse_slo

PACKAGE = Path(exporter.__file__).resolve().parent
SLI_MODULE = Path(sli.__file__).resolve()

#: the metrics SLIs are computed from
SLI_SPECS = (
    m.CACHE_HITS,
    m.CACHE_MISSES,
    m.CACHE_LATENCY,
    m.REDIS_KEYSPACE_HITS,
    m.REDIS_KEYSPACE_MISSES,
    m.API_LATENCY,
)
_W = timedelta(minutes=5)
#: recorded SLI series, without the window suffix (``cache_type:cache_hit_ratio:rate``)
SLI_RECORDS = (
    *(
        namer(_W).removesuffix(c.window_name(_W))
        for namer in (
            c.record_reads,
            c.record_hit_ratio,
            c.record_calls,
            c.record_latency_good,
            c.record_layer_reads,
            c.record_layer_hit_ratio,
            c.record_api_requests,
            c.record_api_good_ratio,
        )
    ),
    c.RECORD_BUDGET_REMAINING,
)

#: the Python names code would use to reach them
SLI_NAMES = frozenset(
    [k for k, v in vars(m).items() if isinstance(v, m.MetricSpec) and v in SLI_SPECS]
    + [k for k, v in vars(c).items() if k.startswith("record_") and callable(v)]
    + [k for k, v in vars(c).items() if isinstance(v, str) and v == c.RECORD_BUDGET_REMAINING]
)

#: literal fragments of SLI PromQL
FRAGMENTS = tuple(
    [f"{fn}({spec.name}" for spec in SLI_SPECS for fn in ("rate", "increase", "irate")]
    + [f"{m.CACHE_LATENCY.name}_bucket", f"{m.API_LATENCY.name}_bucket", *SLI_RECORDS]
)

#: shapes of PromQL arithmetic in a string (``enumerate(`` is not ``rate(``)
PROMQL_SHAPES = re.compile(
    r"\b(?:rate|irate|increase|histogram_quantile)\(|\)\s*/\s*\(|\(1 - |sum(?: by \([\w, ]+\))? ?\("
)


#: where the names themselves are defined: exempt from the fragment check only
NAME_SOURCES = frozenset({Path(m.__file__).resolve(), Path(c.__file__).resolve()})


def package_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.resolve() != SLI_MODULE)


def _strings(node: ast.AST) -> Iterator[str]:
    """Every string literal under ``node``, f-strings with ``{}`` for their fields."""
    for child in ast.walk(node):
        if isinstance(child, ast.JoinedStr):
            yield "".join(
                v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}"
                for v in child.values
            )
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value


def _names(node: ast.AST) -> set[str]:
    found = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.add(child.id)
        elif isinstance(child, ast.Attribute):
            found.add(child.attr)
    return found


def _sli_aliases(tree: ast.Module) -> set[str]:
    """SLI names as imported, renamed or not (``import RECORD_... as B``)."""
    return {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.name in SLI_NAMES
    }


def _scopes(tree: ast.Module) -> Iterator[tuple[str, ast.AST]]:
    """Each top-level function and method, and the module's other statements."""
    rest = ast.Module(body=[], type_ignores=[])
    for stmt in tree.body:
        if isinstance(stmt, ast.ClassDef):
            for item in stmt.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    yield f"{stmt.name}.{item.name}", item
                else:
                    rest.body.append(item)
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield stmt.name, stmt
        elif not isinstance(stmt, (ast.Import, ast.ImportFrom)):
            rest.body.append(stmt)
    yield "<module>", rest


def hand_written_sli(source: str, *, defines_names: bool = False) -> list[str]:
    """Where ``source`` writes SLI PromQL itself instead of asking :mod:`exporter.sli`."""
    problems = [] if defines_names else [f"fragment {f!r}" for f in FRAGMENTS if f in source]
    tree = ast.parse(source)
    watched = SLI_NAMES | _sli_aliases(tree)
    for where, node in _scopes(tree):
        names = sorted(_names(node) & watched)
        shapes = sorted({s for s in _strings(node) if PROMQL_SHAPES.search(s)})
        if names and shapes:
            problems.append(f"{where}: PromQL {shapes[0]!r} built around {', '.join(names)}")
    return problems


def test_no_sli_promql_outside_the_sli_module() -> None:
    found = {
        str(path.relative_to(PACKAGE.parent)): problems
        for path in package_modules()
        if (
            problems := hand_written_sli(
                path.read_text("utf-8"), defines_names=path.resolve() in NAME_SOURCES
            )
        )
    }
    assert found == {}


def test_the_sli_module_would_be_flagged_anywhere_else() -> None:
    """The check is not vacuous: the SLI module itself fails it."""
    assert hand_written_sli(SLI_MODULE.read_text("utf-8"))


@pytest.mark.parametrize(
    "snippet",
    [
        # the shapes the SLI module replaced (status page, dashboards, rule builders)
        'Q = "sum(rate(cache_hits_total{layer=\\"redis\\"}[5m]))"',
        "def f(sel):\n"
        "    h = f'sum(rate({sel(m.CACHE_HITS)}[{RATE}]))'\n"
        "    mi = f'sum(rate({sel(m.CACHE_MISSES)}[{RATE}]))'\n"
        "    return f'{h} / ({h} + {mi})'",
        "def f(o, budget):\n    return f'(1 - {c.record_hit_ratio(W)}{{type=\"{o}\"}}) / {budget}'",
        "def p99(sel):\n"
        "    return f'histogram_quantile(0.99, sum by (le) (rate({CACHE_LATENCY.name}_bucket'",
        "from exporter.rules.conventions import RECORD_BUDGET_REMAINING as B\n"
        "def f(t):\n    return f'1 - (1 - {B}{{type=\"{t}\"}})'",
    ],
)
def test_hand_written_sli_promql_is_detected(snippet: str) -> None:
    assert hand_written_sli(snippet)


def test_reading_sli_series_for_other_purposes_is_not_flagged() -> None:
    """Input series of the promtool tests or the demo's exposition parsing name the
    metrics but write no PromQL."""
    snippet = (
        "def reads(self, t):\n"
        "    return [series(m.CACHE_HITS.name, {'type': t}, '0+1x10')]\n"
        "def snapshot(sample):\n"
        "    return sample.name == f'{CACHE_LATENCY.name}_bucket'\n"
    )
    assert hand_written_sli(snippet) == []


# --- the module's own expressions ---------------------------------------------------------


def test_hit_ratio_inline_and_in_lines() -> None:
    one_line = sli.hit_ratio('job="a"', "5m", layer=m.LAYER_REDIS, type_="session")
    hits = 'sum(rate(cache_hits_total{job="a", layer="redis", type="session"}[5m]))'
    misses = 'sum(rate(cache_misses_total{job="a", layer="redis", type="session"}[5m]))'
    assert one_line == f"{hits} / ({hits} + {misses})"
    lines = sli.hit_ratio("", "1h", layer=m.LAYER_REDIS, by=("type",), layout=sli.LINES)
    assert lines.startswith("sum by (type) (rate(cache_hits_total{layer=")
    assert "\n/\n(" in lines


def test_latency_sli_reads_the_threshold_bucket_over_the_count() -> None:
    expr = sli.latency_good_ratio("", "5m", operation="get", threshold_seconds=0.01, by=())
    assert expr == (
        'sum(rate(cache_latency_seconds_bucket{layer="redis", operation="get", le="0.01"}[5m]))'
        ' / sum(rate(cache_latency_seconds_count{layer="redis", operation="get"}[5m]))'
    )


def test_burn_rate_and_budget_left_are_exact() -> None:
    assert sli.burn_rate("x", 0.95) == "(1 - x) / 0.05"
    assert sli.budget_left("x", 0.999) == "1 - (1 - x) / 0.001"
    assert sli.burn_rate_value(0.9, 0.95) == pytest.approx(2.0)
    assert sli.budget_left_value(0.9, 0.8) == pytest.approx(0.5)


def test_a_label_the_metric_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="no label 'type'"):
        sli.selector(m.CACHE_LATENCY, type="session")


def test_objectives_follow_the_slo_file() -> None:
    slo = load_slo()
    objectives = sli.objectives(slo)
    redis = [o.value for o in objectives if o.kind == sli.HIT_RATE]
    assert redis == list(slo.objectives)
    latency = objectives[-1]
    assert (latency.kind, latency.label, latency.value) == (
        sli.LATENCY,
        "operation",
        slo.latency.operation,
    )
    svc = f'service="{slo.service.name}"'
    assert latency.recorded(_W) == f'{c.record_latency_good(_W)}{{{svc}, operation="get"}}'
    assert latency.recorded(_W, cluster="eu-1") == (
        f'{c.record_latency_good(_W)}{{{svc}, operation="get", cluster="eu-1"}}'
    )
    assert objectives[0].recorded_budget_left() == (
        f'{c.RECORD_BUDGET_REMAINING}{{slo="{c.SLO_HIT_RATE}", {svc}, type="{m.TYPE_ALL}"}}'
    )


def test_api_sli_reads_the_threshold_bucket_of_cached_matched_requests() -> None:
    expr = sli.api_good_ratio('job="a"', "5m", threshold_seconds=0.2, cached="true")
    sel = 'job="a", cached="true", route!="unmatched"'
    assert expr == (
        f'sum(rate(api_request_duration_seconds_bucket{{{sel}, le="0.2"}}[5m]))'
        f" / sum(rate(api_request_duration_seconds_count{{{sel}}}[5m]))"
    )


def test_api_routes_are_one_escaped_regex_and_any_drops_the_cached_matcher() -> None:
    expr = sli.api_requests("", "5m", cached="any", routes=("/api/users/{user_id}", "/a.json"))
    assert expr == (
        "sum(rate(api_request_duration_seconds_count"
        '{route=~"/api/users/\\\\{user_id\\\\}|/a\\\\.json"}[5m]))'
    )
    assert "cached" not in expr


def test_api_and_layer_objectives_come_before_redis_latency_with_their_own_series() -> None:
    slo = parse_slo(
        {
            "version": 1,
            "window": "30d",
            "hit_rate": {"objective": 0.8},
            "latency": {"threshold": "10ms", "objective": 0.99},
            "key_types": [{"name": "session", "ttl": "1h", "tenant_scoped": False}],
            "api": {},
            "layers": {"browser": {"asset": 0.8}, "cdn": {"api": 0.9, "all": 0.85}},
        }
    )
    kinds = [(o.kind, o.layer, o.value) for o in sli.objectives(slo)]
    assert kinds == [
        (sli.HIT_RATE, "", "all"),
        (sli.LAYER_HIT_RATE, "cdn", "api"),
        (sli.LAYER_HIT_RATE, "cdn", "all"),
        (sli.LAYER_HIT_RATE, "browser", "asset"),
        (sli.API_LATENCY, "", "true"),
        (sli.LATENCY, "", "get"),
    ]
    cdn, api = sli.objectives(slo)[1], sli.objectives(slo)[4]
    svc = 'service="cache-app"'
    assert cdn.recorded(_W) == f'{c.record_layer_hit_ratio(_W)}{{{svc}, layer="cdn", type="api"}}'
    assert (
        cdn.recorded_volume(_W) == f'{c.record_layer_reads(_W)}{{{svc}, layer="cdn", type="api"}}'
    )
    assert cdn.title == "CDN hit rate, api"
    assert api.recorded(_W) == f'{c.record_api_good_ratio(_W)}{{{svc}, cached="true"}}'
    assert (api.target, api.threshold_seconds, api.slo_label) == (0.95, 0.2, c.SLO_API_LATENCY)
    assert 'layer="cdn", type="api"' in cdn.raw("", "5m")
