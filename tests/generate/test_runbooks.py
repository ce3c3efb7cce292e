"""Runbooks tell an on-call engineer what to check: every page has the four sections,
its diagnosis names at least one query to run, and every query or metric it names
exists (a runbook pointing at a metric nobody emits sends the responder nowhere)."""

from __future__ import annotations

import re

import promql_parser
import pytest

from exporter.rules import conventions as c
from tests.generate.conftest import REPO
from tests.generate.test_dashboards import contract_names

RUNBOOKS = REPO / "docs" / "runbooks"
SECTIONS = ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation")
CODE = re.compile(r"`([^`\n]+)`")
METRIC_LIKE = re.compile(r"^(cache|redis)_[a-z0-9_:]+$")


def names_in(expr: str) -> list[str] | None:
    """Metric names a PromQL expression selects, or None when it is not PromQL."""
    try:
        tree = promql_parser.parse(expr)
    except Exception:  # shell commands, label values, prose
        return None
    found: list[str] = []
    promql_parser.walk(
        tree,
        lambda n: found.append(n.name) if isinstance(n, promql_parser.VectorSelector) else None,
    )
    return found


def queries(text: str) -> list[tuple[str, list[str]]]:
    """Code spans that are queries (a selector, call or range) or bare metric names."""
    out = []
    for span in CODE.findall(text):
        names = names_in(span)
        if names is None:
            continue
        if any(ch in span for ch in "({[") or METRIC_LIKE.match(span):
            out.append((span, names))
    return out


@pytest.mark.parametrize("alert", c.ALL_ALERTS)
def test_runbook_has_the_sections_and_a_query_to_run(alert: str) -> None:
    text = (RUNBOOKS / f"{alert}.md").read_text("utf-8")
    for section in SECTIONS:
        assert section in text, (alert, section)
    diagnosis = text.split("## Diagnosis", 1)[1].split("## Mitigation", 1)[0]
    assert queries(diagnosis), f"{alert}: the Diagnosis section names no query or metric"


@pytest.mark.parametrize("alert", c.ALL_ALERTS)
def test_every_metric_a_runbook_names_exists(alert: str) -> None:
    known = contract_names()
    text = (RUNBOOKS / f"{alert}.md").read_text("utf-8")
    for span, names in queries(text):
        unknown = {n for n in names if n} - known
        assert not unknown, f"{alert}: `{span}` names {sorted(unknown)}, which nothing emits"
