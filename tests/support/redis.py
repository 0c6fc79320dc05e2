"""
A real C{redis-server} for tests: started on a free loopback port (and a
UNIX socket) with a password read from its own configuration file, stopped,
killed, paused and restarted by its PID; and a tiny blocking RESP client to
look at and damage what it holds.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any

from tests.support.ports import free_port

REDIS_SERVER = shutil.which("redis-server") or "redis-server"


def _encode(*args: Any) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = b"%d" % a
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def reply(self) -> Any:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")


def stop(proc: subprocess.Popen) -> None:
    """Stop a process we started: SIGTERM, SIGKILL after 10 s, by PID."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


class RedisReplyError(Exception):
    """An error reply (C{-ERR ...}) as a value."""


class RedisServer:
    """
    One C{redis-server} process for a test, on C{127.0.0.1:port} and a UNIX
    socket in its own directory.  The password (if any) is in the
    configuration file, never on the command line.  C{testcase.addCleanup}
    stops it by PID.
    """

    def __init__(self, testcase: Any, password: str | None = None) -> None:
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        self.password = password
        self.socket_path = os.path.join(self.dir, "redis.sock")
        self.config = os.path.join(self.dir, "redis.conf")
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"unixsocket {self.socket_path}",
            "unixsocketperm 700",
            'save ""',
            "appendonly no",
            f"dir {self.dir}",
            "daemonize no",
            "loglevel warning",
            f"logfile {os.path.join(self.dir, 'redis.log')}",
        ]
        if password is not None:
            lines.append(f"requirepass {password}")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config, 0o600)
        self.proc: subprocess.Popen | None = None
        testcase.addCleanup(self.stop)
        self.start()

    @property
    def url(self) -> str:
        """C{redis://127.0.0.1:PORT/0} (no password in it)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20.0) -> None:
        """Start (again, on the same port) and wait until it answers PING."""
        self.proc = subprocess.Popen(
            [REDIS_SERVER, self.config],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"redis-server exited with {self.proc.returncode}: {self.log()}"
                )
            try:
                self.command("PING")
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer within {timeout}s")

    def log(self) -> str:
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def _signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after L{pause}."""
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, and wait for it to be gone."""
        if self.proc is not None and self.proc.poll() is None:
            self._signal(signal.SIGCONT)
            self._signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 10 s), by PID."""
        if self.proc is not None:
            self._signal(signal.SIGCONT)
            stop(self.proc)

    def command(self, *args: Any, timeout: float = 5.0) -> Any:
        """One command, blocking, authenticated; an error reply is returned."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            reader = _Reader(s)
            if self.password is not None:
                s.sendall(_encode("AUTH", self.password))
                reader.reply()
            s.sendall(_encode(*args))
            return reader.reply()

    def items(self) -> dict[bytes, bytes]:
        """Every string key and its value (for looking at what is stored)."""
        found = {}
        for key in self.command("KEYS", "*") or []:
            if self.command("TYPE", key) == "string":
                found[key] = self.command("GET", key)
        return found

    def all_bytes(self) -> bytes:
        """Every key and value of every type, concatenated (DUMP form)."""
        out = []
        for key in self.command("KEYS", "*") or []:
            out.append(key)
            dumped = self.command("DUMP", key)
            if isinstance(dumped, bytes):
                out.append(dumped)
        return b"\n".join(out)
