"""The demo's own PostgreSQL: the database behind Redis, as ADR-004 draws it.

When no DSN is given and PostgreSQL's server programs are installed (Debian:
``postgresql``, which keeps them in ``/usr/lib/postgresql/<version>/bin``), the
demo creates a cluster with ``initdb`` in its temp dir and runs ``postgres`` in
the foreground as one of its children (:class:`exporter.demo.processes.Child`):
its unix socket in the temp dir, a loopback TCP port it binds itself, password
authentication with a password made for this run.  The password is handed to
``initdb`` in a file (removed at once) and to the app and the exporter in their
environment, never on a command line or in the demo's output.  PostgreSQL
refuses to run as root, so a demo running as root runs ``initdb`` and
``postgres`` as the ``postgres`` user the package creates.

The app's miss path reads :data:`TABLE` (:class:`SourceReader`); the exporter
reads ``pg_stat_database`` for the buffer-cache layer.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.demo.processes import DemoError, as_user, child_env, die_with_parent

#: the table the app reads on a Redis miss: the "database" of cache-aside
TABLE = "demo_source"
ROWS = 5000
#: the miss path's bound on one read (server side) and the pause after a failure
STATEMENT_TIMEOUT_MS = 50
RETRY_SECONDS = 5.0
#: the OS user PostgreSQL runs as when the demo runs as root (Debian's package creates it)
OS_USER = "postgres"
#: settings of a small, throwaway cluster: nothing here needs to survive a crash
SETTINGS = (
    ("listen_addresses", "127.0.0.1"),
    ("shared_buffers", "16MB"),
    ("max_connections", "30"),
    ("fsync", "off"),
    ("synchronous_commit", "off"),
    ("full_page_writes", "off"),
)
INITDB_TIMEOUT = 60.0


@dataclass(frozen=True)
class Binaries:
    initdb: str
    postgres: str
    #: the OS user to run them as (None: the demo's own user)
    user: str | None


def _version(directory: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", directory)) or (0,)


def find_binaries() -> Binaries | str:
    """PostgreSQL's ``initdb`` and ``postgres``, or why the demo runs without them."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    found: dict[str, str] = {}
    for name in ("initdb", "postgres"):
        for directory in dirs:
            if os.access(Path(directory) / name, os.X_OK):
                found[name] = str(Path(directory) / name)
                break
        else:
            on_path = shutil.which(name)
            if on_path:
                found[name] = on_path
    if len(found) < 2:
        return "PostgreSQL not installed"
    try:
        import psycopg  # noqa: F401  the [postgres] extra: the identity check and the table
    except ImportError:
        return "psycopg not installed (pip install 'cache-slo-exporter[postgres]')"
    user = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            return f"PostgreSQL refuses to run as root and there is no {OS_USER!r} user"
        user = OS_USER
    return Binaries(found["initdb"], found["postgres"], user)


class Cluster:
    """One cluster in ``root`` (a directory of the demo's temp dir)."""

    def __init__(self, binaries: Binaries, root: Path) -> None:
        self.binaries = binaries
        self.root = root
        self.data = root / "data"
        self.password = secrets.token_hex(16)

    def dsn(self, port: int) -> str:
        """Holds the password: for environments only, never argv or output."""
        return f"postgresql://postgres:{self.password}@127.0.0.1:{port}/postgres"

    @staticmethod
    def public_url(port: int) -> str:
        """What the demo prints: the address, without the password."""
        return f"postgresql://postgres@127.0.0.1:{port}/postgres"

    def init(self, demo_dir: Path) -> None:
        """``initdb`` (2-3 s); the password reaches it in a file it alone can read."""
        user = self.binaries.user
        self.root.mkdir(mode=0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            # the postgres user must reach its directory through the demo's (0700, root's)
            os.chown(demo_dir, -1, entry.pw_gid)
            os.chmod(demo_dir, 0o710)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        pwfile = self.root / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(self.password + "\n")
        if user is not None:
            shutil.chown(pwfile, user)
        log_path = demo_dir / "initdb.log"
        try:
            with log_path.open("wb") as log:
                done = subprocess.run(
                    [
                        self.binaries.initdb,
                        "-D",
                        str(self.data),
                        "-U",
                        "postgres",
                        "--auth=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "--no-sync",
                        "--encoding=UTF8",
                        "--locale=C",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    env=child_env(),
                    timeout=INITDB_TIMEOUT,
                    check=False,
                    # own session: a Ctrl-C in the terminal reaches the demo only
                    start_new_session=True,
                    preexec_fn=(
                        functools.partial(die_with_parent, signal.SIGTERM)
                        if sys.platform == "linux"
                        else None
                    ),
                    **as_user(user),
                )
        except subprocess.TimeoutExpired as exc:
            raise DemoError(f"postgres: initdb did not finish within {INITDB_TIMEOUT:g}s") from exc
        finally:
            pwfile.unlink(missing_ok=True)
        if done.returncode != 0:
            tail = "\n".join(log_path.read_text("utf-8", "replace").splitlines()[-15:])
            raise DemoError(f"postgres: initdb failed ({done.returncode}):\n{tail}")

    def args(self, port: int) -> list[str]:
        """``postgres`` in the foreground: the demo's child, not a daemon."""
        settings = [arg for name, value in SETTINGS for arg in ("-c", f"{name}={value}")]
        return [self.binaries.postgres, "-D", str(self.data), "-p", str(port),
                "-k", str(self.root), *settings]  # fmt: skip

    def is_ours(self, port: int) -> bool:
        """The server on ``port`` takes this run's password and serves this data dir."""
        import psycopg

        with psycopg.connect(self.dsn(port), connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT current_setting('data_directory')").fetchone()
        return row is not None and Path(row[0]).resolve() == self.data.resolve()

    def create_table(self, port: int) -> None:
        """The rows the app's miss path reads (a few hundred kB: all in shared buffers)."""
        import psycopg

        with psycopg.connect(self.dsn(port), connect_timeout=5, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {TABLE} (id integer PRIMARY KEY, body text NOT NULL)")
            conn.execute(
                f"INSERT INTO {TABLE} SELECT g, repeat('x', 100) FROM generate_series(1, %s) AS g",
                (ROWS,),
            )
            conn.execute(f"ANALYZE {TABLE}")


class SourceReader:
    """The app's miss path into PostgreSQL: one row by primary key, at most
    :data:`STATEMENT_TIMEOUT_MS` per read.

    Never stalls the workload: connecting (which libpq bounds by whole seconds only)
    happens in a background thread, a read while that is under way, or within
    :data:`RETRY_SECONDS` of a failure, is skipped, and a failed read drops the
    connection.  Used from the workload's thread."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None
        self._connecting = False
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self.reads = 0
        self.failures = 0

    def read(self, key: str) -> bool:
        """Read the row for ``key``; False when skipped or failed."""
        import psycopg

        conn = self._conn
        if conn is None:
            self._connect_later()
            return False
        row_id = zlib.crc32(key.encode()) % ROWS + 1
        try:
            conn.execute(f"SELECT body FROM {TABLE} WHERE id = %s", (row_id,)).fetchone()
        except psycopg.Error:
            self.failures += 1
            self._conn = None
            self._retry_at = time.monotonic() + RETRY_SECONDS
            with contextlib.suppress(psycopg.Error):
                conn.close()
            return False
        self.reads += 1
        return True

    def _connect_later(self) -> None:
        with self._lock:
            if self._connecting or time.monotonic() < self._retry_at:
                return
            self._connecting = True
        threading.Thread(target=self._connect, name="postgres-connect", daemon=True).start()

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(
                self._dsn,
                connect_timeout=2,
                options=f"-c statement_timeout={STATEMENT_TIMEOUT_MS}",
                autocommit=True,
            )
        except psycopg.Error:
            self._retry_at = time.monotonic() + RETRY_SECONDS
        finally:
            with self._lock:
                self._connecting = False

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
