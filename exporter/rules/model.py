"""Rules as data: what the builders return and the renderer writes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Rule:
    """A recording rule (``record``) or an alerting rule (``alert``)."""

    expr: str
    record: str | None = None
    alert: str | None = None
    for_: timedelta | None = None
    labels: Labels = ()
    annotations: Labels = ()
    #: rendered as a YAML comment above the rule (why it looks the way it does)
    comment: str | None = None

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
