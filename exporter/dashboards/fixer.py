"""Post-processing of grafanalib 0.7.1's JSON into a current Grafana dashboard.

grafanalib is unmaintained: it writes ``schemaVersion: 12``, keys Grafana
dropped years ago (``rows``, ``span``, ``hideControls``, ...), ``null`` for
unset fields, legacy graph-threshold keys and a threshold value as the string
``"null"``.  Each fix below is one table entry or one small function, so the
tests (validation against Grafana's own schema) point at what to change.
"""

from __future__ import annotations

from typing import Any

#: the dashboard JSON model version of Grafana 10.4/11 that we write
SCHEMA_VERSION = 39

DASHBOARD_LEGACY = ("rows", "hideControls", "sharedCrosshair", "style", "__inputs", "gnetId")
PANEL_LEGACY = ("span", "minSpan", "height", "error", "editable")
TARGET_LEGACY = ("step", "intervalFactor", "metric", "target", "query")
THRESHOLD_LEGACY = ("index", "line", "op", "yaxis")
TEMPLATE_LEGACY = ("auto", "auto_count", "auto_min", "useTags", "tagsQuery", "tagValuesQuery")
TIMEPICKER_LEGACY = ("time_options", "nowDelay")


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _without(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


def _datasource(ref: Any) -> Any:
    """String datasource names become ``{"type": ..., "uid": ...}`` references."""
    if isinstance(ref, str):
        return {"type": "prometheus", "uid": ref}
    return ref


def _thresholds(config: dict[str, Any]) -> dict[str, Any]:
    steps = config.get("steps")
    if not isinstance(steps, list):
        steps = []
    fixed = []
    for i, step in enumerate(steps):
        step = _without(step, THRESHOLD_LEGACY)
        # the base step has no lower bound: JSON null, not the string "null"
        if i == 0 or step.get("value") == "null":
            step["value"] = None
        fixed.append(step)
    if not fixed:
        fixed = [{"color": "green", "value": None}]
    return {**config, "steps": fixed}


def _panel(panel: dict[str, Any]) -> dict[str, Any]:
    panel = _without(panel, PANEL_LEGACY)
    panel["datasource"] = _datasource(panel.get("datasource"))
    panel["targets"] = [
        {**_without(t, TARGET_LEGACY), "datasource": _datasource(t.get("datasource"))}
        for t in panel.get("targets", [])
    ]
    defaults = panel.get("fieldConfig", {}).get("defaults")
    if isinstance(defaults, dict) and "thresholds" in defaults:
        defaults["thresholds"] = _thresholds(defaults["thresholds"])
    if "panels" in panel:
        panel["panels"] = [_panel(p) for p in panel["panels"]]
    return panel


def _template(var: dict[str, Any]) -> dict[str, Any]:
    var = _without(var, TEMPLATE_LEGACY)
    if "datasource" in var:
        var["datasource"] = _datasource(var["datasource"])
    current = var.get("current") or {}
    var["current"] = {k: v for k, v in current.items() if k in ("selected", "text", "value")}
    if var["current"].get("value") == "$__all":
        var["current"]["text"] = "All"
    if var.get("type") == "datasource" or not var["current"]:
        del var["current"]  # Grafana picks the default data source itself
    return var


def fix_dashboard(data: dict[str, Any]) -> dict[str, Any]:
    """A grafanalib ``to_json_data()`` (already JSON-encoded and decoded) made current."""
    out: dict[str, Any] = _without(data, DASHBOARD_LEGACY)
    out["schemaVersion"] = SCHEMA_VERSION
    out["panels"] = [_panel(p) for p in out.get("panels", [])]
    templating = out.get("templating", {})
    templating["list"] = [_template(v) for v in templating.get("list", [])]
    if "timepicker" in out:
        out["timepicker"] = _without(out["timepicker"], TIMEPICKER_LEGACY)
    result: dict[str, Any] = _drop_nulls(out)
    # the base threshold step's null is meaningful: put it back after dropping nulls
    # (in the panel's defaults and in each override that sets thresholds)
    for panel in result.get("panels", []):
        field_config = panel.get("fieldConfig", {})
        configs = [field_config.get("defaults", {}).get("thresholds", {})]
        configs += [
            prop.get("value") or {}
            for override in field_config.get("overrides", [])
            for prop in override.get("properties", [])
            if prop.get("id") == "thresholds"
        ]
        for config in configs:
            for step in config.get("steps", [])[:1]:
                step["value"] = None
    return result
