"""Selectors and thresholds filled into every rule (the mixins' ``_config``).

Thresholds carry their unit in their name.  They are strings parsed as
:class:`~decimal.Decimal` so the YAML shows exactly what was configured.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEFAULT_RUNBOOK_BASE_URL = "https://github.com/your-org/cache-slo-exporter/blob/main/docs/runbooks/"


@dataclass(frozen=True)
class RuleConfig:
    """What differs between deployments besides the SLO file: runbook links, thresholds.

    Which series belong to the service (its selectors) is the SLO file's ``service``.
    """

    runbook_base_url: str = DEFAULT_RUNBOOK_BASE_URL
    memory_used_ratio_max: Decimal = Decimal("0.9")
    #: an eviction surge needs at least this many evictions per second ...
    eviction_rate_per_second_min: Decimal = Decimal("1")
    #: ... and this many times the type's average over the last hour
    eviction_surge_factor: Decimal = Decimal("3")
    client_error_ratio_max: Decimal = Decimal("0.05")
    #: a replica whose last acknowledgement is older than this lags (it acks every second)
    replication_lag_seconds_max: Decimal = Decimal("10")
    #: connected clients over maxclients above which new connections are at risk
    clients_used_ratio_max: Decimal = Decimal("0.85")

    def __post_init__(self) -> None:
        if not self.runbook_base_url.endswith("/"):
            object.__setattr__(self, "runbook_base_url", self.runbook_base_url + "/")

    def runbook_url(self, alert: str) -> str:
        return f"{self.runbook_base_url}{alert}.md"
