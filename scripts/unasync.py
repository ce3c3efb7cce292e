#!/usr/bin/env python3
"""Generate the sync client, exporter/client/sync.py, from the asyncio one, aio.py.

In the style of httpcore's scripts/unasync.py: every line of the source goes
through the substitutions below, in order.  What truly differs between the sides
is in exporter/client/_async_backend.py and _sync_backend.py, so the service
itself translates token by token, with two more steps:

- a per-call deadline block, ``with self._deadlines:``, is dropped and
  its body dedented: a thread cannot be interrupted (redis-py's socket timeouts
  bound the sync calls), and the sync hot path must not pay for a no-op context;
- the result goes through ``ruff format`` (the project's settings), so the
  generated file is format-clean: lines that ``await`` made long are joined again.
  ruff is a dev dependency; without it the script stops with exit status 2.

    python scripts/unasync.py           # write exporter/client/sync.py
    python scripts/unasync.py --check   # exit 1, with a diff, if it is stale
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "exporter" / "client" / "aio.py"
TARGET = ROOT / "exporter" / "client" / "sync.py"
HEADER = (
    "# Generated from exporter/client/aio.py by scripts/unasync.py: do not edit.\n"
    "# Edit aio.py (or _async_backend.py), then run: python scripts/unasync.py\n"
)

SUBS = [
    (r"\basync def\b", "def"),
    (r"\basync for\b", "for"),
    (r"\basync with\b", "with"),
    (r"\(await ([\w.]+\(\))\)", r"\1"),  # (await pipe.execute())[0] -> pipe.execute()[0]
    (r"\bawait ", ""),
    (r"\baclose\b", "close"),
    (r"\bAwaitable\[(\w+)\]", r"\1"),
    (r"\bAwaitable, ", ""),
    (r"\bAsyncCacheService\b", "CacheService"),
    (r"\bAsyncSubscription\b", "Subscription"),
    (r"\bAsyncSingleFlight\b", "SingleFlight"),
    (r"\bAsyncLeaseRenewer\b", "LeaseRenewer"),
    (r"\b_async_backend\b", "_sync_backend"),
    (r"\bredis\.asyncio\b", "redis"),
    (r"\basyncio backend\b", "sync backend"),
]
COMPILED = [(re.compile(pattern), replacement) for pattern, replacement in SUBS]
#: a block header the sync service drops (its body is dedented one level)
DROPPED_BLOCK = re.compile(r"^( *)with self\._deadlines:\s*$")
INDENT = "    "


def unasync_line(line: str) -> str:
    for pattern, replacement in COMPILED:
        line = pattern.sub(replacement, line)
    return line


def drop_blocks(lines: Iterable[str]) -> Iterator[str]:
    """The lines without the ``DROPPED_BLOCK`` headers, their bodies dedented."""
    body: str | None = None  # the indentation of the current dropped block's body
    for line in lines:
        if body is not None:
            if not line.strip():
                yield line
                continue
            if line.startswith(body):
                yield line[len(INDENT) :]
                continue
            body = None
        found = DROPPED_BLOCK.match(line)
        if found:
            body = found.group(1) + INDENT
            continue
        yield line


def ruff_command() -> list[str]:
    if importlib.util.find_spec("ruff") is not None:
        return [sys.executable, "-m", "ruff"]
    found = shutil.which("ruff")
    if found is None:
        print(
            "scripts/unasync.py: ruff not found (pip install -e '.[dev]'): "
            "it formats the generated file",
            file=sys.stderr,
        )
        raise SystemExit(2)
    return [found]


def ruff_format(text: str) -> str:
    """``text`` formatted by ``ruff format`` with the project's settings."""
    run = subprocess.run(
        [*ruff_command(), "format", "--stdin-filename", "exporter/client/sync.py", "-"],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if run.returncode != 0:
        print(f"scripts/unasync.py: ruff format failed:\n{run.stderr}", file=sys.stderr)
        raise SystemExit(2)
    return run.stdout


def generate(source: str) -> str:
    lines = drop_blocks(source.splitlines(keepends=True))
    return ruff_format(HEADER + "".join(map(unasync_line, lines)))


def main(argv: list[str]) -> int:
    expected = generate(SOURCE.read_text())
    if "--check" not in argv:
        TARGET.write_text(expected)
        return 0
    current = TARGET.read_text() if TARGET.exists() else ""
    if current == expected:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "exporter/client/sync.py (committed)",
            "exporter/client/sync.py (generated from exporter/client/aio.py)",
        )
    )
    print("exporter/client/sync.py is stale: run python scripts/unasync.py", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
