"""Loopback ports for tests, and how long a test waits on a peer."""

from __future__ import annotations

import socket
import time
from typing import Any

#: Seconds a client in a test (s_client, Python's ssl) may take.
CLIENT_TIMEOUT = 10


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: Any = None, timeout: float = 20.0) -> None:
    """
    Wait until something accepts on 127.0.0.1:port (bounded); fail early,
    with its output, when C{proc} (a server process) exits meanwhile.
    """
    from tests.support.processes import read_output

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(
                f"server exited with {proc.returncode}:\n{read_output(proc)}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port} after {timeout}s")
