"""Hostile and absurd SLO files: each refused with one bounded line naming the file,
the field and what was expected (exit 2), in bounded time and memory (#10 item 8)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cli import main
from exporter.slo import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_KEY_TYPES,
    SLO,
    SLOError,
    default_slo_path,
    load_slo,
    parse_slo,
    parse_yaml,
)

DEFAULT_TEXT = default_slo_path().read_text("utf-8")
#: an error message never grows with the input: file name + field + expectation + echo
MAX_MESSAGE_CHARS = 700


def default_raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(DEFAULT_TEXT)
    return raw


def assert_one_bounded_line(message: str) -> None:
    assert "\n" not in message and "\r" not in message, message
    assert len(message) <= MAX_MESSAGE_CHARS, len(message)
    assert all(c.isprintable() for c in message), repr(message)


def refused(path: Path) -> str:
    """Load ``path``; it must be refused quickly with a one-line message."""
    started = time.monotonic()
    with pytest.raises(SLOError) as info:
        load_slo(path)
    assert time.monotonic() - started < 2.0
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert_one_bounded_line(message)
    return message


def write(tmp_path: Path, text: str | bytes, name: str = "slo.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


def with_field(**replacements: str) -> str:
    """The shipped file with ``field: value`` lines replaced (top or nested)."""
    lines = []
    for line in DEFAULT_TEXT.splitlines():
        key = line.strip().split(":", 1)[0]
        if key in replacements and ":" in line:
            indent = line[: len(line) - len(line.lstrip())]
            line = f"{indent}{key}: {replacements[key]}"
        lines.append(line)
    return "\n".join(lines) + "\n"


# --- the YAML itself -------------------------------------------------------------

BILLION_LAUGHS = "\n".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
        *(
            f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]"
            for p, n in zip("abcdefgh", "bcdefghi", strict=True)
        ),
        "version: *i",
    ]
)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    message = refused(write(tmp_path, BILLION_LAUGHS))
    assert "line 1: expected no YAML anchors or aliases" in message


def test_an_alias_inside_a_known_field_is_refused_not_echoed(tmp_path: Path) -> None:
    """The issue's case: the expanded value used to be the 5.8 MB error message."""
    anchored = '  - name: &n ["xxxxxxxxxxxxxxxxxxxxxxxx", "xxxxxxxxxxxxxxxxxxxx"]'
    text = DEFAULT_TEXT.replace("  - name: session", anchored)
    text = text.replace("  - name: user", "  - name: *n")
    message = refused(write(tmp_path, text))
    assert "anchors or aliases" in message and "xxxxxxxxxx" not in message


def test_a_file_over_the_size_cap_is_refused_before_parsing(tmp_path: Path) -> None:
    padding = "# padding\n" * (MAX_FILE_BYTES // 10)
    message = refused(write(tmp_path, DEFAULT_TEXT + padding))
    assert f"(file): expected an SLO file of at most {MAX_FILE_BYTES // 1024} KiB" in message


def test_an_endless_file_is_read_no_further_than_the_cap() -> None:
    message = refused(Path("/dev/zero"))
    assert "at most 64 KiB" in message


def test_a_file_that_is_not_utf8_is_refused_naming_the_byte(tmp_path: Path) -> None:
    message = refused(write(tmp_path, DEFAULT_TEXT.encode() + b"# caf\xe9\n"))
    assert f"(file): expected UTF-8 text, got 'byte 0xe9 at offset {len(DEFAULT_TEXT) + 5}'" in (
        message
    )


@pytest.mark.parametrize("opening", ["[", "{a: "])
def test_deep_nesting_is_refused_without_recursing(tmp_path: Path, opening: str) -> None:
    closing = "]" if opening == "[" else "}"
    depth = 12_000  # far beyond Python's recursion limit, still under the size cap
    message = refused(write(tmp_path, "version: " + opening * depth + "1" + closing * depth))
    assert f"line 1: expected at most {MAX_DEPTH} levels of nesting" in message


def test_a_field_given_twice_is_refused(tmp_path: Path) -> None:
    message = refused(write(tmp_path, DEFAULT_TEXT + "window: 7d\n"))
    assert "expected each field once, got 'window'" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: " + "9" * 5000 + "\n", "expected valid YAML scalars"),
        ("version: 2024-13-45\n", "expected valid YAML scalars"),
        ("version: !!python/object:os.system x\n", "expected valid YAML"),
        ("version: 1\x00\n", "expected valid YAML (unacceptable character #x0000"),
        ("version: [1\n", "expected valid YAML"),
    ],
)
def test_scalars_yaml_cannot_build_are_one_line_errors(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in refused(write(tmp_path, text))


def test_parse_yaml_refuses_oversized_text_too() -> None:
    with pytest.raises(SLOError, match="at most 64 KiB"):
        parse_yaml("#" * (MAX_FILE_BYTES + 1), "text")


# --- numbers and durations --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("min_read_rate", ".nan", "a number of reads per second"),
        ("min_read_rate", ".inf", "a number of reads per second"),
        ("min_read_rate", "-.inf", "a number of reads per second"),
        ("min_read_rate", "-1", "a number of reads per second"),
        ("min_read_rate", "1.0e+300", "a number of reads per second"),
        ("min_read_rate", "1.0e-300", "a number of reads per second"),
        ("min_read_rate", "9" * 400, "a number of reads per second"),
        ("min_read_rate", "true", "a number of reads per second"),
        ("objective", ".nan", "a ratio"),
        ("objective", ".inf", "a ratio"),
        ("objective", "0.9999999", "at most 6 decimals"),
        ("objective", "1.0e-7", "at most 6 decimals"),
        ("objective", "1", "a ratio"),
        ("objective", "0", "a ratio"),
        ("objective", "true", "a ratio"),
        ("hit_rate_objective", "0.99999999999", "at most 6 decimals"),
        ("window", "1ms", "a duration between 7d and 365d"),
        ("window", "6d23h59m59s", "a duration between 7d and 365d"),
        ("window", "366d", "a duration between 7d and 365d"),
        ("window", "99999999999999999999d", "a duration such as"),
        ("window", "999999999d", "a duration between 7d and 365d"),
        ("window", "30", "a duration such as"),
        ("ttl", "999ms", "a duration between 1s and 365d"),
        ("ttl", "366d", "a duration between 1s and 365d"),
        ("ttl", "0s", "a duration greater than zero"),
        ("threshold", "999999999d", "a bucket boundary"),
        ("version", "true", "a supported format version"),
        ("version", "1.0", "a supported format version"),
        ("operation", "[get]", "one of"),
    ],
)
def test_absurd_numbers_and_durations_are_refused_naming_the_field(
    tmp_path: Path, field: str, value: str, expected: str
) -> None:
    message = refused(write(tmp_path, with_field(**{field: value})))
    assert f": expected {expected}" in message or expected in message, message
    field_path = {
        "min_read_rate": "hit_rate.min_read_rate",
        "objective": "hit_rate.objective",  # the first 'objective:' line is the hit rate's
        "hit_rate_objective": "key_types[0].hit_rate_objective",
        "ttl": "key_types[0].ttl",
        "threshold": "latency.threshold",
        "operation": "latency.operation",
    }.get(field, field)
    assert f": {field_path}: expected" in message, message


@pytest.mark.parametrize("objective", ["0.5", "0.3", "0.000001"])
def test_a_latency_objective_at_or_below_the_median_is_refused(
    tmp_path: Path, objective: str
) -> None:
    raw = default_raw()
    raw["latency"]["objective"] = float(objective)
    message = refused(write(tmp_path, yaml.safe_dump(raw)))
    assert "latency.objective: expected a ratio above 0.5 and below 1" in message


def test_the_edge_values_that_are_allowed_load(tmp_path: Path) -> None:
    raw = default_raw()
    raw["window"] = "7d"
    raw["hit_rate"].update(objective=0.999999, min_read_rate=0.000001)
    raw["latency"]["objective"] = 0.500001
    raw["key_types"][0].update(ttl="1s", hit_rate_objective=0.000001)
    raw["key_types"][1].update(ttl="365d", hit_rate_objective=0.999999)
    slo = load_slo(write(tmp_path, yaml.safe_dump(raw)))
    assert slo.hit_rate_objective == 0.999999 and slo.latency.objective == 0.500001
    raw["window"] = "365d"
    raw["hit_rate"]["min_read_rate"] = 1_000_000.0
    assert load_slo(write(tmp_path, yaml.safe_dump(raw))).min_read_rate == 1e6


def test_too_many_key_types_are_refused(tmp_path: Path) -> None:
    raw = default_raw()
    raw["key_types"] = [
        {"name": f"t{i}", "ttl": "1m", "tenant_scoped": False} for i in range(MAX_KEY_TYPES + 1)
    ]
    message = refused(write(tmp_path, yaml.safe_dump(raw)))
    assert f"key_types: expected a non-empty list of at most {MAX_KEY_TYPES} key types" in message


# --- what error messages echo ------------------------------------------------------


def test_echoed_values_are_cut_and_unprintable_characters_escaped(tmp_path: Path) -> None:
    name = "sess\u202eion\x1b[31m\n" + "x" * 10_000
    raw = default_raw()
    raw["key_types"][0]["name"] = name
    message = refused(write(tmp_path, yaml.safe_dump(raw)))
    assert "key_types[0].name: expected a lower-case name" in message
    assert "\\u202e" in message and "\\x1b" in message
    assert "x" * 100 not in message


def test_an_unknown_field_name_is_cut_in_the_field_path(tmp_path: Path) -> None:
    raw = default_raw()
    raw["latency"]["y" * 5000 + "\u2066"] = 1
    message = refused(write(tmp_path, yaml.safe_dump(raw)))
    assert "latency.yyyy" in message and "y" * 100 not in message


def test_a_file_name_with_a_newline_stays_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 2\n", name="evil\nname.yaml")
    with pytest.raises(SLOError) as info:
        load_slo(path)
    assert_one_bounded_line(str(info.value))
    assert "evil\\nname.yaml" in str(info.value)


@pytest.mark.parametrize(
    "text",
    [BILLION_LAUGHS, with_field(window="1ms"), with_field(min_read_rate=".nan")],
    ids=["alias-bomb", "window-1ms", "min-read-rate-nan"],
)
def test_check_slo_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = write(tmp_path, text)
    assert main(["check-slo", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: ")


# --- fuzz --------------------------------------------------------------------------


def check_outcome(load: Any) -> SLO | None:
    """``load()`` gives an SLO or one bounded SLOError line, within a second."""
    started = time.monotonic()
    try:
        slo = load()
    except SLOError as exc:
        assert_one_bounded_line(str(exc))
        slo = None
    assert time.monotonic() - started < 1.0
    return slo


yaml_words = st.sampled_from(
    [
        *DEFAULT_TEXT.split(),
        "&a",
        "*a",
        "<<:",
        "!!binary",
        "!!set",
        "!!python/name:os.system",
        "[",
        "]",
        "{",
        "}",
        "-",
        ":",
        "? ",
        "|",
        ">",
        "'",
        '"',
        "\n",
        "\n  ",
        "\t",
        ".nan",
        ".inf",
        "1e999",
        "0x1F",
        "0o17",
        "1_000",
        "2024-02-30",
        "~",
        "%YAML 1.1\n---\n",
        "---\n",
        "...\n",
        "\ufeff",
        "\u202e",
        "\x00",
        "\x85",
    ]
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.one_of(st.binary(max_size=2000), st.lists(yaml_words, max_size=200).map("".join)))
def test_fuzz_any_bytes_give_an_slo_or_one_error_line(tmp_path: Path, data: bytes | str) -> None:
    path = write(tmp_path, data, name="fuzz.yaml")
    check_outcome(lambda: load_slo(path))


json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["7d", "30d", "10ms", "1ms", "get", "session", 0.5, 0.99]),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5)
    ),
    max_leaves=30,
)

FIELD_PATHS = [
    ("version",),
    ("window",),
    ("hit_rate",),
    ("hit_rate", "objective"),
    ("hit_rate", "min_read_rate"),
    ("latency",),
    ("latency", "operation"),
    ("latency", "threshold"),
    ("latency", "objective"),
    ("key_types",),
    ("key_types", 0),
    ("key_types", 0, "name"),
    ("key_types", 1, "prefix"),
    ("key_types", 2, "ttl"),
    ("key_types", 3, "tenant_scoped"),
    ("key_types", 0, "hit_rate_objective"),
]


def set_field(node: Any, path: tuple[str | int, ...], value: Any) -> None:
    """Set ``path`` to ``value`` where the document still has that path (earlier
    changes may have replaced a parent with something else)."""
    for step in path[:-1]:
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return
    try:
        node[path[-1]] = value
    except (IndexError, TypeError):
        return


@settings(max_examples=400, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(FIELD_PATHS), json_like), min_size=1, max_size=4))
def test_fuzz_any_value_in_any_field_gives_an_slo_or_one_error_line(
    changes: list[tuple[tuple[str | int, ...], Any]],
) -> None:
    raw: Any = default_raw()
    for path, value in changes:
        set_field(raw, path, value)
    slo = check_outcome(lambda: parse_slo(raw, "fuzz.yaml"))
    text = yaml.safe_dump(raw, allow_unicode=True)
    if len(text.encode()) <= MAX_FILE_BYTES:  # the same document through the YAML loader
        again = check_outcome(lambda: parse_slo(parse_yaml(text, "fuzz.yaml"), "fuzz.yaml"))
        assert (slo is None) == (again is None)


@settings(max_examples=200, deadline=None)
@given(doc=json_like)
def test_fuzz_any_document_gives_an_slo_or_one_error_line(doc: Any) -> None:
    check_outcome(lambda: parse_slo(doc, "fuzz.yaml"))
