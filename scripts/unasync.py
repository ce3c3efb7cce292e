#!/usr/bin/env python3
"""Generate the sync client, exporter/client/sync.py, from the asyncio one, aio.py.

In the style of httpcore's scripts/unasync.py: every line of the source goes
through the substitutions below, in order; nothing else changes.  What truly
differs between the sides is in exporter/client/_async_backend.py and
_sync_backend.py, so the service itself translates token by token.

    python scripts/unasync.py           # write exporter/client/sync.py
    python scripts/unasync.py --check   # exit 1, with a diff, if it is stale
"""

from __future__ import annotations

import difflib
import re
import sys
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


def unasync_line(line: str) -> str:
    for pattern, replacement in COMPILED:
        line = pattern.sub(replacement, line)
    return line


def generate(source: str) -> str:
    return HEADER + "".join(map(unasync_line, source.splitlines(keepends=True)))


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
