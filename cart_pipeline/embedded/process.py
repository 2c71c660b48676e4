"""Start, find and stop the stack's background processes — always by pid, never by name.

A pid alone can be reused by the OS after a process dies, so every check also compares
the process's command line with a marker (the service's data directory) we gave it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

import psutil

START_HEADER = "=== cart_pipeline: process started"


def spawn(
    cmd: list[str],
    log_path: Path,
    env: dict[str, str] | None = None,
    *,
    die_with_parent: bool = False,
) -> int:
    """Start ``cmd`` in its own session (it outlives the CLI) with output appended to a log.

    ``die_with_parent`` (test sessions): the child gets SIGTERM when the process that spawned
    it dies, even by SIGKILL, so a killed test run leaves no broker behind. Linux's
    PR_SET_PDEATHSIG through util-linux's ``setpriv``, which execs the command in place (same
    pid); where setpriv is missing the child simply outlives its parent, as ``up`` wants.
    """
    if die_with_parent and shutil.which("setpriv"):
        cmd = ["setpriv", "--pdeathsig", "TERM", "--", *cmd]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        # Logs are appended across starts; tail() shows only what follows the last header.
        log.write(f"\n{START_HEADER} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            close_fds=True,
        )
    return proc.pid


def is_alive(pid: int | None, marker: str = "") -> bool:
    """True when ``pid`` runs (not a zombie) and its command line contains ``marker``."""
    if not pid:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            _reap(pid)
            return False
        return not marker or marker in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop(pid: int | None, marker: str = "", grace_s: float = 20.0) -> bool:
    """SIGTERM, wait up to ``grace_s``, then SIGKILL. Returns True if a process was stopped."""
    if not is_alive(pid, marker):
        return False
    assert pid is not None
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return True
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


def kill(pid: int) -> None:
    """SIGKILL at once (crash tests)."""
    _signal(pid, signal.SIGKILL)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect the exit status when the process is our own child (avoids zombies in tests)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines written since the most recent start."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            last = deque(handle, maxlen=2000)
    except OSError:
        return ""
    since = list(last)
    for index in range(len(since) - 1, -1, -1):
        if since[index].startswith(START_HEADER):
            since = since[index + 1 :]
            break
    return "".join(since[-lines:]).rstrip()
