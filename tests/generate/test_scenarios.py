"""The promtool scenario builder's mirror of Prometheus' template functions.

promtool compares annotations as text, so the expected descriptions must be
formatted exactly as Prometheus formats ``$value`` (prometheus/template).
"""

from __future__ import annotations

import pytest

from exporter.rules.promtool_tests import expand, humanize, humanize_duration, matchers

CASES = [
    (humanize, 0.016666666666666666, "16.67m"),
    (humanize, 1234.0, "1.234k"),
    (humanize, 10.0, "10"),
    (humanize, 0.0, "0"),
    (humanize_duration, 0.01098, "10.98ms"),
    (humanize_duration, 0.0005, "500us"),
]


@pytest.mark.parametrize(("function", "value", "text"), CASES)
def test_template_functions_format_like_prometheus(
    function: object, value: float, text: str
) -> None:
    assert function(value) == text  # type: ignore[operator]


def test_expand_fills_values_and_labels() -> None:
    template = (
        "{{ $labels.type }}: {{ $value | humanizePercentage }} "
        '({{ $value | printf "%.2f" }}x, raw {{ $value }})'
    )
    assert expand(template, 0.75, {"type": "session"}) == "session: 75% (0.75x, raw 0.75)"
    assert expand("up = {{ $value }}", 0.0, {}) == "up = 0"


def test_selectors_must_be_equality_matchers() -> None:
    assert matchers('job="a", env="b"') == {"job": "a", "env": "b"}
    with pytest.raises(ValueError, match="equality matchers"):
        matchers("job=~a")
