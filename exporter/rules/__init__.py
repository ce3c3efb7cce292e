"""Prometheus recording and alerting rules generated from the SLO file.

The chain is Sloth's: small pure steps (:mod:`builders`) return data (groups of
rules), :mod:`render` turns that data into deterministic YAML.  Names live in
:mod:`conventions`, burn-rate windows in :mod:`windows`, time scaling in
:mod:`profiles`, selectors and thresholds in :mod:`config`; every SLI and
budget expression comes from :mod:`exporter.sli`.  Each rule also carries what
it means (objective, burn tier) as data, which :mod:`promtool_tests` reads.
"""

from __future__ import annotations
