"""
Servers and programs in subprocesses: started with this checkout on the
path and their files in a test's temporary directory, stopped in cleanup,
their output kept for failure messages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

from tests.support.ports import wait_for_port

#: The checkout's root directory.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_output(proc: Any) -> str:
    """What a process from L{start_process} printed so far."""
    path = getattr(proc, "output_path", None)
    if path is None:
        return ""
    with open(path, errors="replace") as f:
        return f.read()


def environment(tmp: str) -> dict[str, str]:
    """An environment that finds this checkout and keeps files in C{tmp}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["XDG_DATA_HOME"] = os.path.join(tmp, "data")
    env["XDG_CACHE_HOME"] = os.path.join(tmp, "cache")
    return env


def _drop_file_capabilities() -> None:
    """
    In a child about to exec: take away root's power to read and search any
    file (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so file modes apply to it.
    """
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_capbset_drop = 24
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(pr_capbset_drop, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_unprivileged(code: str) -> str:
    """
    Run Python C{code} with file modes applying to it (as root, without the
    capabilities that let root read every file) and this checkout first on
    the path, and return what it printed.  For tests of files a user cannot
    read.
    """
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": ROOT},
        preexec_fn=_drop_file_capabilities if os.geteuid() == 0 else None,
    )
    if proc.returncode != 0:
        raise AssertionError(f"exited with {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def stop_process(proc: subprocess.Popen) -> None:
    """Stop a process we started: SIGTERM, SIGKILL after 10 s, by PID."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def start_process(testcase: Any, argv: list[str], port: int | None = None) -> Any:
    """Start a server process; stop it (TERM, then KILL) in cleanup."""
    tmp = os.path.abspath(testcase.mktemp())
    os.makedirs(tmp)
    output_path = os.path.join(tmp, "output.log")
    out = open(output_path, "wb")  # noqa: SIM115 - closed in cleanup
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=tmp,
        env=environment(tmp),
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    proc.output_path = output_path
    proc.tmp = tmp

    def stop() -> None:
        stop_process(proc)
        out.close()

    testcase.addCleanup(stop)
    if port is not None:
        wait_for_port(port, proc)
    return proc


def start_twist(testcase: Any, port: int, *options: str) -> Any:
    """
    C{twist resumetls --port PORT OPTIONS...} from L{start_process}, returned
    once it listens.
    """
    argv = ["-m", "twisted", "resumetls", "--port", str(port), *options]
    return start_process(testcase, argv, port)
