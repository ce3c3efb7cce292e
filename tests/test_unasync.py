"""exporter/client/sync.py is generated from aio.py: CI fails when it is stale."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "unasync.py"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_sync_client_is_what_unasync_generates() -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=ROOT
    )
    assert run.returncode == 0, (
        "exporter/client/sync.py is stale: edit exporter/client/aio.py, then run "
        f"python scripts/unasync.py\n{run.stdout}{run.stderr}"
    )


def test_a_stale_sync_client_fails_the_check_with_a_diff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = load_script()
    stale = tmp_path / "exporter" / "client" / "sync.py"
    stale.parent.mkdir(parents=True)
    stale.write_text(script.generate(script.SOURCE.read_text()).replace("def get(", "def got("))
    monkeypatch.setattr(script, "TARGET", stale)
    assert script.main(["--check"]) == 1
    out = capsys.readouterr()
    assert "-    def got(self, key: str) -> Any:" in out.out
    assert "+    def get(self, key: str) -> Any:" in out.out
    assert "exporter/client/sync.py is stale" in out.err
    assert script.main([]) == 0  # writes it
    assert script.main(["--check"]) == 0


def test_the_generated_client_is_sync_and_says_so() -> None:
    text = (ROOT / "exporter" / "client" / "sync.py").read_text()
    assert text.startswith("# Generated from exporter/client/aio.py by scripts/unasync.py")
    code = [line.split("#")[0] for line in text.splitlines()]
    for token in ("async ", "await ", "Awaitable", "asyncio", "aclose", "AsyncCacheService"):
        assert not [line for line in code if token in line], token


def test_each_line_is_rewritten_token_by_token() -> None:
    script = load_script()
    cases = {
        "    async def get(self) -> Any:\n": "    def get(self) -> Any:\n",
        "        data = await self.redis.get(key)\n": "        data = self.redis.get(key)\n",
        "            async for key in it:\n": "            for key in it:\n",
        "return int((await pipe.execute())[0])\n": "return int(pipe.execute()[0])\n",
        "        await self.redis.aclose()\n": "        self.redis.close()\n",
        "loader: Callable[[], Awaitable[T]]": "loader: Callable[[], T]",
        "from collections.abc import Awaitable, Callable": "from collections.abc import Callable",
        "import redis.asyncio.cluster\n": "import redis.cluster\n",
        "from exporter.client import _async_backend as backend\n": (
            "from exporter.client import _sync_backend as backend\n"
        ),
        "-> backend.AsyncSubscription:": "-> backend.Subscription:",
        "class AsyncCacheService(ServiceCore):": "class CacheService(ServiceCore):",
        "self._awaited = 1  # awaiting\n": "self._awaited = 1  # awaiting\n",
    }
    for source, expected in cases.items():
        assert script.unasync_line(source) == expected, source


def test_the_two_backends_offer_the_same_names() -> None:
    """What aio.py takes from ``_async_backend`` exists, unasynced, in ``_sync_backend``."""
    from exporter.client import _async_backend, _sync_backend

    script = load_script()
    translated = sorted(script.unasync_line(name) for name in _async_backend.__all__)
    assert translated == sorted(_sync_backend.__all__)
    for name in _sync_backend.__all__:
        assert hasattr(_sync_backend, name), name


def test_deadline_blocks_are_dropped_and_their_bodies_dedented() -> None:
    """The sync service has no per-call deadline block (a thread cannot be interrupted)
    and its hot path pays nothing for one."""
    script = load_script()
    source = (
        "        try:\n"
        "            with self._deadlines:\n"
        "                data = await self.redis.get(\n"
        "                    key\n"
        "                )\n"
        "\n"
        "                more = 1\n"
        "        except Exception:\n"
        "            pass\n"
    )
    expected = (
        "        try:\n"
        "            data = self.redis.get(\n"
        "                key\n"
        "            )\n"
        "\n"
        "            more = 1\n"
        "        except Exception:\n"
        "            pass\n"
    )
    lines = script.drop_blocks(source.splitlines(keepends=True))
    assert "".join(map(script.unasync_line, lines)) == expected
    text = (ROOT / "exporter" / "client" / "sync.py").read_text()
    assert not re.search(r"^ *with self\._deadlines:$", text, re.MULTILINE)
    get = text[text.index("    def get(self, key: str)") : text.index("    def mget(")]
    assert "        try:\n            data = self.redis.get(key)\n" in get


def test_the_generated_client_is_format_clean() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "exporter/client/sync.py"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout + run.stderr
