"""The SLO file: the shipped ADR defaults, and bad files refused with file and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from exporter.cli import main
from exporter.metrics import TYPE_OTHER
from exporter.slo import ApiSLO, SLOError, format_duration, load_slo, parse_duration, parse_slo


def _default_raw() -> dict:
    from exporter.slo import default_slo_path

    return yaml.safe_load(default_slo_path().read_text())


def test_shipped_default_carries_the_adr_numbers() -> None:
    slo = load_slo()
    assert slo.hit_rate_objective == 0.80
    assert slo.latency.operation == "get"
    assert slo.latency.threshold_seconds == 0.01
    assert slo.latency.objective == 0.99
    assert slo.window == timedelta(days=30)
    ttls = {kt.name: kt.ttl for kt in slo.key_types}
    assert ttls == {
        "session": timedelta(hours=24),
        "user": timedelta(hours=1),
        "organization": timedelta(hours=1),
        "permissions": timedelta(minutes=15),
        "api-key": timedelta(hours=1),
        "rate-limit": timedelta(minutes=1),
        "llm-response": timedelta(days=7),
        "analytics": timedelta(minutes=1),
        "feature-flag": timedelta(minutes=5),
    }
    scoped = {kt.name for kt in slo.key_types if kt.tenant_scoped}
    assert scoped == {"organization", "rate-limit", "analytics"}
    assert slo.objectives == {"all": 0.8, "session": 0.95, "user": 0.75, "llm-response": 0.6}


def test_keys_are_classified_by_prefix_and_unknown_ones_are_other() -> None:
    slo = load_slo()
    assert slo.type_of_key("session:abc") == "session"
    assert slo.type_of_key(b"organization:t1:o9") == "organization"
    assert slo.type_of_key("sessionx:abc") == TYPE_OTHER
    assert slo.type_of_key("session") == TYPE_OTHER
    assert slo.type_names[-1] == TYPE_OTHER


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10ms", timedelta(milliseconds=10)),
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("7d", timedelta(days=7)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_durations_parse_and_format_round_trip(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert format_duration(expected) == text


@pytest.mark.parametrize(
    ("mutate", "field", "expected"),
    [
        (lambda d: d.update(version=7), "version", "a supported format version (1)"),
        (lambda d: d.pop("window"), "window", "required"),
        (lambda d: d.update(window="a month"), "window", "a duration"),
        (lambda d: d["hit_rate"].update(objective=80), "hit_rate.objective", "between 0 and 1"),
        (lambda d: d["latency"].update(threshold="12ms"), "latency.threshold", "bucket boundary"),
        (lambda d: d["latency"].update(operation="fetch"), "latency.operation", "one of"),
        (lambda d: d["key_types"][2].update(ttl="soon"), "key_types[2].ttl", "a duration"),
        (
            lambda d: d["key_types"][1].update(tenant_scoped="yes"),
            "key_types[1].tenant_scoped",
            "true or false",
        ),
        (lambda d: d["key_types"][0].update(name="other"), "key_types[0].name", "reserved"),
        (
            lambda d: d["key_types"][3].update(name="user"),
            "key_types[3].name",
            "not used by another",
        ),
        (lambda d: d["key_types"][3].update(prefix="a:b"), "key_types[3].prefix", "key prefix"),
        (lambda d: d.update(extra=1), "extra", "known fields"),
        (lambda d: d.update(key_types=[]), "key_types", "non-empty list"),
        (lambda d: d["api"].update(threshold="180ms"), "api.threshold", "bucket boundary"),
        (lambda d: d["api"].update(objective=1.5), "api.objective", "between 0 and 1"),
        (lambda d: d["api"].update(cached="yes"), "api.cached", "true, false or any"),
        (lambda d: d["api"].update(routes="/api"), "api.routes", "a list of at most 32"),
        (lambda d: d["api"].update(routes=["api/x"]), "api.routes[0]", "a route template"),
        (lambda d: d["api"].update(routes=["/a", "/a"]), "api.routes[1]", "not listed before"),
        (lambda d: d["api"].update(p95=1), "api.p95", "known fields"),
        (lambda d: d.update(layers={"redis": {"all": 0.8}}), "layers.redis", "known fields"),
        (lambda d: d.update(layers={"cdn": {}}), "layers.cdn", "a mapping of 1-32"),
        (lambda d: d.update(layers={"cdn": {"API": 0.9}}), "layers.cdn", "type names"),
        (lambda d: d.update(layers={"cdn": {"api": 90}}), "layers.cdn.api", "between 0 and 1"),
        (
            lambda d: d.update(layers={"postgres": {"heap": 0.99}}),
            "layers.postgres.heap",
            "type buffer or all",
        ),
    ],
)
def test_bad_files_are_refused_naming_file_field_and_expectation(
    tmp_path: Path, mutate, field: str, expected: str
) -> None:
    raw = _default_raw()
    mutate(raw)
    path = tmp_path / "bad-slo.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SLOError) as info:
        load_slo(path)
    message = str(info.value)
    assert message.startswith(f"{path}: {field}: expected ")
    assert expected in message


def test_the_api_section_takes_the_adr_defaults_and_is_optional() -> None:
    raw = _default_raw()
    assert load_slo().api == ApiSLO(timedelta(milliseconds=200), 0.95, "true", ())
    raw["api"] = None  # `api:` alone: every default
    assert parse_slo(raw).api == ApiSLO()
    raw["api"] = {"cached": "any", "routes": ["/api/users/{user_id}"], "threshold": "250ms"}
    api = parse_slo(raw).api
    assert api is not None
    assert (api.cached, api.routes, api.threshold_seconds) == (
        "any",
        ("/api/users/{user_id}",),
        0.25,
    )
    raw["api"] = {"cached": False}
    assert parse_slo(raw).api == ApiSLO(cached="false")
    del raw["api"]
    assert parse_slo(raw).api is None


def test_layer_objectives_keep_the_layer_order_whatever_the_file_order() -> None:
    raw = _default_raw()
    raw["layers"] = {"postgres": {"buffer": 0.99}, "cdn": {"api": 0.9, "all": 0.85}}
    assert parse_slo(raw).layers == {"cdn": {"api": 0.9, "all": 0.85}, "postgres": {"buffer": 0.99}}
    assert load_slo().layers == {}


def test_invalid_yaml_and_missing_file_are_clear_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\nwindow: [30d\n")
    with pytest.raises(SLOError, match=r"broken\.yaml: line \d+: expected valid YAML"):
        load_slo(broken)
    with pytest.raises(SLOError, match=r"nope\.yaml: \(file\): expected a readable SLO file"):
        load_slo(tmp_path / "nope.yaml")


def test_parse_slo_rejects_a_non_mapping() -> None:
    with pytest.raises(SLOError, match=r"^x\.yaml: \(document\): expected a YAML mapping"):
        parse_slo(["not", "a", "mapping"], "x.yaml")


def test_an_empty_file_is_named_as_such(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SLOError, match=r"empty\.yaml: \(document\): .*got 'an empty file'"):
        load_slo(empty)


def test_check_slo_command_exits_2_with_the_field_on_a_bad_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = _default_raw()
    raw["latency"]["objective"] = 1.5
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["check-slo", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: latency.objective: expected a ratio" in err
    assert main(["check-slo"]) == 0
    assert "session: prefix 'session', ttl 1d, global, hit rate >= 0.95" in capsys.readouterr().out


def test_check_slo_into_a_closed_pipe_exits_quietly() -> None:
    """`check-slo | head -1`: the reader is gone; no traceback, exit 0."""
    import os
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before anything was written
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "exporter.cli", "check-slo"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    finally:
        os.close(write_end)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
    assert proc.returncode == 0


def test_companion_keys_count_under_their_values_key_type() -> None:
    """The client's early-refresh companions (``!xf:{key}``, ``!xf:key`` with a hash tag)
    are memory spent for that key type, not ``other``."""
    slo = load_slo()
    assert slo.type_of_key("!xf:{organization:t42:o7}") == "organization"
    assert slo.type_of_key(b"!xf:user:{u1}:profile") == "user"
    assert slo.type_of_key("!xf:{nothing-known:1}") == "other"
    assert slo.type_of_key("!xf:") == "other"
    assert slo.type_of_key("!lock:user:1") == "other"


def _with_layers(tmp_path: Path, layers: dict[str, dict[str, float]]) -> Path:
    raw = _default_raw()
    raw["layers"] = layers
    path = tmp_path / "slo.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_layer_type_no_reader_emits_is_a_one_line_warning_against_the_adr_classes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``cdn: {apii: ...}``: the CDN reader and the middleware emit the path classes
    (api, asset, html, other) or nothing: that objective would have no data for ever.
    check-slo and generate say so, but only warn: serve and the app may be given
    classes of their own (--path-classes), which the SLO file does not name."""
    path = _with_layers(tmp_path, {"cdn": {"apii": 0.9, "api": 0.9}, "browser": {"all": 0.5}})
    assert main(["check-slo", str(path)]) == 0
    captured = capsys.readouterr()
    warning = (
        f"warning: {path}: layers.cdn.apii: expected a path class (api, asset, html, other) "
        "or all; no CDN log or middleware counts this type, so the objective would never "
        "have data"
    )
    assert captured.err.splitlines() == [warning]
    assert "cdn hit rate: api >= 0.9, apii >= 0.9" in captured.out  # yaml.safe_dump sorts
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(path), "--out", str(out)]) == 0
    assert warning in capsys.readouterr().err.splitlines()
    assert (out / "alerts" / "cache-slo-alerts.rules.yml").is_file()


def test_with_the_path_classes_serve_uses_a_layer_type_outside_them_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    classes = tmp_path / "classes.yaml"
    classes.write_text("version: 1\nclasses:\n  - {name: apii, prefixes: [/api/], policy: api}\n")
    path = _with_layers(tmp_path, {"cdn": {"apii": 0.9}, "browser": {"api": 0.5}})
    assert main(["check-slo", str(path), "--path-classes", str(classes)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {path}: layers.browser.api: expected a path class (apii, other) or all; "
        "no CDN log or middleware counts this type, so the objective would never have data"
    ]
    out = tmp_path / "out"
    assert main(["generate", "--slo", str(path), "--out", str(out), "--path-classes",
                 str(classes)]) == 2  # fmt: skip
    assert "layers.browser.api" in capsys.readouterr().err and not out.exists()
    missing = tmp_path / "missing.yaml"
    assert main(["check-slo", str(path), "--path-classes", str(missing)]) == 2
    assert (
        capsys.readouterr().err.strip()
        == f"error: {missing}: cannot read (No such file or directory)"
    )
    # the classes it names: accepted, silently
    ok = _with_layers(tmp_path, {"cdn": {"apii": 0.9, "other": 0.5}, "browser": {"all": 0.5}})
    assert main(["check-slo", str(ok), "--path-classes", str(classes)]) == 0
    assert capsys.readouterr().err == ""
