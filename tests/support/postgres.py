"""A real PostgreSQL cluster for tests: ``initdb`` + ``pg_ctl`` in a temp directory.

PostgreSQL refuses to run as root, so when the tests run as root the cluster
is created and started as the ``postgres`` user (``runuser -u postgres --``)
in a directory that user owns.  Password authentication (scram-sha-256) is on,
so tests can check that the DSN's password never leaks.

    server = PostgresServer().start()
    psycopg.connect(server.dsn)
    server.stop()
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.support.processes import free_port, wait_for_port

DEFAULT_PASSWORD = "pg-test-secret-4711"


def postgres_bin(name: str) -> str:
    """Path of a PostgreSQL server program (Debian keeps them off PATH); fail, never skip."""
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name!r} is not installed; run the README's test command "
            "(make test), which installs the OS packages the tests run for real"
        )
    return found


class PostgresServer:
    """One PostgreSQL cluster on a free loopback port, in its own temp directory."""

    def __init__(self, password: str = DEFAULT_PASSWORD, port: int | None = None) -> None:
        self.password = password
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="cache-slo-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self._as_root = os.geteuid() == 0
        self._initialized = False

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if self._as_root else []
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip()}\n{log[-2000:]}"
            )

    def _init(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        os.chmod(self.root, 0o700)
        self._run(
            postgres_bin("initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={pwfile}",
            "--no-sync",
            "--encoding=UTF8",
            "--locale=C",
        )
        pwfile.unlink()
        self._initialized = True

    def start(self) -> PostgresServer:
        if not self._initialized:
            self._init()
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            postgres_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
            "-w", "-t", "60", "start",
        )  # fmt: skip
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(postgres_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
