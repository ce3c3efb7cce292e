"""The README's "Instrument an app" example works as written, against a real Redis."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

from tests.support.processes import cleanup_env

README = Path(__file__).resolve().parents[2] / "README.md"


def example() -> str:
    section = README.read_text().split("## Instrument an app", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no python example under '## Instrument an app'"
    return match.group(1)


def test_readme_instrumentation_example_runs_and_counts_a_miss_then_a_hit(
    redis_url: str, tmp_path: Path
) -> None:
    script = tmp_path / "example.py"
    script.write_text(example())
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**cleanup_env(), "REDIS_URL": redis_url},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    first, second, counters = done.stdout.splitlines()
    assert (
        ast.literal_eval(first)
        == ast.literal_eval(second)
        == {
            "id": "o7",
            "tenant": "t42",
            "name": "Acme",
        }
    )
    assert sorted(ast.literal_eval(counters)) == [
        'cache_hits_total{layer="redis",type="organization"} 1.0',
        'cache_misses_total{layer="redis",type="organization"} 1.0',
    ]
