"""Rules as data: what the builders return and the renderer writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # both import this module's number helpers
    from exporter.rules.windows import BurnTier
    from exporter.sli import Objective

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rule:
    """A recording rule (``record``) or an alerting rule (``alert``).

    Besides what is rendered, a rule keeps what it means as data (the fields
    after ``comment``, never written to YAML), so the promtool test generator
    reads the objective, tier and watched series instead of parsing PromQL back.
    """

    expr: str
    record: str | None = None
    alert: str | None = None
    for_: timedelta | None = None
    labels: Labels = ()
    annotations: Labels = ()
    #: rendered as a YAML comment above the rule (why it looks the way it does)
    comment: str | None = None
    #: the SLO objective an SLO alert guards (its kind, label, value and target)
    objective: Objective | None = None
    #: a burn-rate alert's tier: severity, factor and nominal long/short windows
    tier: BurnTier | None = None
    #: an ``absent()`` alert's watched series: metric name and the selector it must match
    absent: tuple[str, str] | None = None
    #: the longest range the alert reads (nominal): how much history it needs
    window: timedelta = timedelta(0)

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)

    def with_annotation(self, name: str, value: str) -> Rule:
        return replace(self, annotations=(*self.annotations, (name, value)))


@dataclass(frozen=True)
class Group:
    name: str
    rules: tuple[Rule, ...]
    comments: tuple[str, ...] = ()


@dataclass(frozen=True)
class RuleFile:
    """One ``alerts/*.rules.yml`` file."""

    name: str
    groups: tuple[Group, ...]


@dataclass
class Generated:
    """Everything one generator run produced, plus what it had to change and why."""

    files: tuple[RuleFile, ...]
    notes: list[str] = field(default_factory=list)

    def alerts(self) -> list[Rule]:
        return [r for f in self.files for g in f.groups for r in g.rules if r.alert]


def number(value: Decimal | float | int) -> str:
    """A number as written in PromQL/YAML: exact decimal, never ``0.0999999``.

    Floats go through ``repr`` (the shortest string that round-trips), so the
    SLO file's ``0.95`` stays ``0.95`` and ``1 - 0.95`` computed as Decimal is
    ``0.05``.
    """
    dec = value if isinstance(value, Decimal) else Decimal(repr(value))
    text = format(dec.normalize(), "f")
    return text


def decimal(value: float) -> Decimal:
    """The decimal a float from the SLO file was written as."""
    return Decimal(repr(value))
