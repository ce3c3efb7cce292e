"""Child processes of the demo: start on loopback, verify they hold their port, stop cleanly.

A port found free a moment ago can be taken before the child binds it, and
"something answers on the port" does not say *our* child answers.  So each
child binds its port itself (or inherits a socket the demo bound), and is
ready only when the process we started is the one holding the listening
socket (read from ``/proc``: the socket's inode among the child's open files)
and, where the program can say so, answers with this run's identity.  A
child that exits because its port was taken is restarted on another port by
:meth:`exporter.demo.stack.Stack._spawn`.
"""

from __future__ import annotations

import ctypes
import functools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

_PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In the child before exec: ``signum`` when the demo's thread that started it dies.

    Children are started from the demo's main thread, which lives as long as the
    demo does.  Linux only (``prctl``); elsewhere a demo killed outright leaves its
    children to be stopped by hand."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)


class DemoError(RuntimeError):
    """The demo could not start a part; the message says which and why."""


class PortTaken(DemoError):
    """The child exited because another program holds its port: try another port."""


#: what redis-server, Prometheus, Alertmanager (Go) and uvicorn log when bind() fails
ADDRESS_IN_USE = re.compile(r"address already in use", re.IGNORECASE)
_PROC_NET = (Path("/proc/net/tcp"), Path("/proc/net/tcp6"))
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def listening_inodes(port: int) -> set[str] | None:
    """Inodes of the sockets listening on TCP ``port`` (any address); None without /proc."""
    found: set[str] = set()
    readable = False
    for table in _PROC_NET:
        try:
            lines = table.read_text("ascii").splitlines()[1:]
        except OSError:
            continue
        readable = True
        for line in lines:
            fields = line.split()
            listens = len(fields) > 9 and fields[3] == _LISTEN
            if listens and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found if readable else None


def holds_listener(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds a socket listening on ``port``; None where /proc is
    missing (not Linux), so the caller falls back to the program's own identity."""
    inodes = listening_inodes(port)
    if inodes is None:
        return None
    if not inodes:
        return False
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return None if not Path("/proc/self/fd").exists() else False
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for fd in fds:
        try:
            if os.readlink(fd) in wanted:
                return True
        except OSError:
            continue
    return False


def bound_socket(preferred: int = 0) -> socket.socket:
    """A listening TCP socket on 127.0.0.1, bound now: ``preferred`` if free, else any port.

    Handed to a child (``pass_fds``) it cannot be taken between choosing and binding."""
    for port in (preferred, 0) if preferred else (0,):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            continue
        sock.listen(128)
        return sock
    raise DemoError("no free TCP port on 127.0.0.1")


def free_port(preferred: int = 0) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else any free port.

    Only a guess: another program may bind it before the child does (the child then
    exits with "address already in use" and is restarted on another port)."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise DemoError("no free TCP port on 127.0.0.1")


def which(name: str, *extra_dirs: str) -> str | None:
    """Path of a program on PATH or in one of ``extra_dirs``."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def child_env() -> dict[str, str]:
    """The environment without HTTP proxies that could divert loopback traffic."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def as_user(user: str | None) -> dict[str, Any]:
    """Popen's arguments that run a program as ``user`` (its primary group, no others)."""
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


class Child:
    """One program the demo runs, its output captured in a log file of the temp dir."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        port: int,
        log_dir: Path,
        env: dict[str, str] | None = None,
        *,
        identity: Callable[[Child], bool] | None = None,
        pass_fds: Sequence[int] = (),
        user: str | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.env = {**child_env(), **(env or {})}
        self.args = list(args)
        self.port = port
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        #: asks the program who it is (its pid, data dir, this run's token): True when it
        #: is ours; exceptions count as "not yet"
        self.identity = identity
        self.pass_fds = tuple(pass_fds)
        #: run as this user (the demo runs as root, and PostgreSQL refuses to); Popen
        #: switches user before the death signal is set, which a change of user clears
        self.user = user
        #: how the program stops at once and cleanly (PostgreSQL: SIGINT, its fast
        #: shutdown; its SIGTERM waits for every client to leave)
        self.stop_signal = stop_signal

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc is not None else -1

    def start(self, timeout: float = 20.0) -> Child:
        with self.log_path.open("wb") as log:
            # own session: a Ctrl-C in the terminal reaches the demo only, which then
            # stops the children in order; a demo killed outright (SIGKILL, OOM)
            # cannot, so the kernel sends each child SIGTERM when the demo dies
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                pass_fds=self.pass_fds,
                preexec_fn=(
                    functools.partial(die_with_parent, self.stop_signal)
                    if sys.platform == "linux"
                    else None
                ),
                **as_user(self.user),
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        """Return once the process we started holds its port and says it is ours.

        Raises :class:`PortTaken` when it exited because the port was in use."""
        deadline = time.monotonic() + timeout
        why = "did not listen"
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                tail = self.tail()
                if ADDRESS_IN_USE.search(tail):
                    raise PortTaken(f"{self.name}: port {self.port} is taken")
                raise DemoError(f"{self.name} exited before listening on port {self.port}:\n{tail}")
            holds = holds_listener(self.proc.pid, self.port)
            if holds is False:
                why = "did not hold its listening socket"
            elif self._is_ours():
                return
            else:
                why = "did not answer as this demo's own" if holds else "did not answer"
            time.sleep(0.05)
        raise DemoError(f"{self.name} {why} on port {self.port} within {timeout}s")

    def _is_ours(self) -> bool:
        if self.identity is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return True
            except OSError:
                return False
        try:
            return self.identity(self)
        except Exception:  # not up yet, or someone else's reply: ask again
            return False

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self.proc = None
