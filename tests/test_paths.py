"""Path classes and their Cache-Control policies (exporter/paths.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from exporter.paths import POLICIES, PathClassError, directives, load_classes, violations


def test_the_adr_defaults_classify_api_assets_and_pages() -> None:
    classes = load_classes(None)
    assert classes.types == ("api", "asset", "html", "other")
    assert classes.classify("/api/users/1") == "api"
    assert classes.classify("/static/app.3f2a.JS") == "asset"
    assert classes.classify("/") == "html"
    assert classes.classify("/about.html") == "html"
    assert classes.classify("/robots.txt") == "other"


def test_a_file_replaces_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "paths.yaml"
    path.write_text(
        "version: 1\nclasses:\n"
        "  - {name: reports, prefixes: [/api/reports/], policy: api}\n"
        "  - {name: api, prefixes: [/api/], policy: none}\n"
    )
    classes = load_classes(path)
    assert classes.classify("/api/reports/9") == "reports"
    assert classes.classify("/api/x") == "api"
    assert classes.types[-1] == "other"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("version: 2\nclasses: []", "version"),
        ("version: 1\nclasses: []", "classes"),
        ("version: 1\nclasses: [{name: other, prefixes: [/x]}]", "classes[0].name"),
        ("version: 1\nclasses: [{name: Bad-Name, prefixes: [/x]}]", "classes[0].name"),
        ("version: 1\nclasses: [{name: a, prefixes: [x]}]", "classes[0].prefixes"),
        ("version: 1\nclasses: [{name: a}]", "classes[0]"),
        ("version: 1\nclasses: [{name: a, prefixes: [/a], policy: forever}]", "classes[0].policy"),
        ("version: 1\nclasses: [{name: a, prefixes: [/a], colour: red}]", "classes[0].colour"),
        ("version: 1\nclasses: [{name: a, prefixes: [/a]}, {name: a, prefixes: [/b]}]", "name"),
        ("version: 1\nextra: 1\nclasses: [{name: a, prefixes: [/a]}]", "extra"),
        ("\x00\xff", "expected"),
    ],
)
def test_a_bad_file_is_refused_naming_file_and_field(tmp_path: Path, text: str, field: str) -> None:
    path = tmp_path / "paths.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    with pytest.raises(PathClassError) as caught:
        load_classes(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and field in message and "\n" not in message


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "paths.yaml"
    path.write_bytes(b"#" * (10 * 1024 * 1024))
    with pytest.raises(PathClassError, match="at most 65536 bytes"):
        load_classes(path)


@pytest.mark.parametrize(
    ("policy", "cache_control", "vary", "broken"),
    [
        ("api", "public, max-age=3600, s-maxage=3600", "Authorization, Accept-Language", []),
        ("api", "public, max-age=3600, s-maxage=3600", "accept-language,authorization", []),
        ("api", "public, max-age=3600, s-maxage=3600", "Authorization", ["vary"]),
        ("api", "private, max-age=60", None, ["public", "max_age", "s_maxage", "vary"]),
        ("api", None, None, ["missing"]),
        ("immutable", "public, max-age=31536000, immutable", None, []),
        ("immutable", "public, max-age=86400", None, ["max_age", "immutable"]),
        ("immutable", "public, max-age=99999999999999999999, immutable", None, ["max_age"]),
        ("html", "no-cache", None, []),
        ("html", "no-store", None, []),
        ("html", "max-age=600", None, ["no_cache"]),
        ("none", None, None, []),
    ],
)
def test_policy_rules(
    policy: str, cache_control: str | None, vary: str | None, broken: list[str]
) -> None:
    assert violations(POLICIES[policy], cache_control, vary) == broken  # type: ignore[index]


def test_directives_are_case_insensitive_and_unquoted() -> None:
    assert directives('Public, MAX-AGE="60", no-cache') == {
        "public": "",
        "max-age": "60",
        "no-cache": "",
    }
