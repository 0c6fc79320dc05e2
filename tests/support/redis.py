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
from tests.support.processes import stop_process

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


class RedisReplyError(Exception):
    """An error reply (C{-ERR ...}) as a value."""


class RedisServer:
    """
    One C{redis-server} process for a test, on C{127.0.0.1:port} and a UNIX
    socket in its own directory.  The password (if any) is in the
    configuration file, never on the command line.  C{testcase.addCleanup}
    stops it by PID.
    """

    def __init__(
        self,
        testcase: Any,
        password: str | None = None,
        tls: bool = False,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.dir = tempfile.mkdtemp(prefix="redis-test-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        self.password = password
        self.tls_port: int | None = None
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
        if tls:
            lines += self._tls_lines()
        lines += extra
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")
        os.chmod(self.config, 0o600)
        self.proc: subprocess.Popen | None = None
        testcase.addCleanup(self.stop)
        self.start()

    def _tls_lines(self) -> list[str]:
        """
        A TLS port too: a CA of its own (C{ca.pem}) signs the server's
        certificate for 127.0.0.1 and localhost; clients need no certificate.
        """
        from resumetls.certificates import issue_certificate, write_pem_files

        ca = issue_certificate("resumetls test Redis CA", ca=True)
        cert, key = issue_certificate(
            "localhost", dns_names=["localhost"], ip_addresses=["127.0.0.1"], issuer=ca
        )
        self.ca_file = os.path.join(self.dir, "ca.pem")
        write_pem_files(ca[0], ca[1], self.ca_file, os.path.join(self.dir, "ca.key"))
        cert_file, key_file = write_pem_files(
            cert,
            key,
            os.path.join(self.dir, "redis.pem"),
            os.path.join(self.dir, "redis.key"),
        )
        self.tls_port = free_port()
        return [
            f"tls-port {self.tls_port}",
            f"tls-cert-file {cert_file}",
            f"tls-key-file {key_file}",
            f"tls-ca-cert-file {self.ca_file}",
            "tls-auth-clients no",
        ]

    @property
    def url(self) -> str:
        """C{redis://127.0.0.1:PORT/0} (no password in it)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def tls_url(self) -> str:
        """C{rediss://127.0.0.1:TLS_PORT/0?ca=CA} (with C{tls=True})."""
        return f"rediss://127.0.0.1:{self.tls_port}/0?ca={self.ca_file}"

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
            stop_process(self.proc)

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


class RedisSentinel:
    """
    One C{redis-server --sentinel} for a test, on a free loopback port,
    watching C{master} as C{name} (quorum 1: it alone decides a failover).
    Stopped by PID in cleanup.
    """

    def __init__(self, testcase: Any, master: RedisServer, name: str = "mymaster"):
        self.dir = tempfile.mkdtemp(prefix="sentinel-test-")
        testcase.addCleanup(shutil.rmtree, self.dir, True)
        self.port = free_port()
        self.name = name
        config = os.path.join(self.dir, "sentinel.conf")
        with open(config, "w") as f:
            f.write(
                f"bind 127.0.0.1\nport {self.port}\ndaemonize no\ndir {self.dir}\n"
                f"logfile {os.path.join(self.dir, 'sentinel.log')}\n"
                f"sentinel monitor {name} 127.0.0.1 {master.port} 1\n"
                f"sentinel down-after-milliseconds {name} 2000\n"
                f"sentinel failover-timeout {name} 10000\n"
            )
        self.proc = subprocess.Popen(
            [REDIS_SERVER, config, "--sentinel"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        testcase.addCleanup(stop_process, self.proc)
        self.wait(lambda: self.command("PING") == "PONG", "answer PING")

    def url(self, db: int = 0) -> str:
        """C{redis+sentinel://127.0.0.1:PORT/NAME/DB}."""
        return f"redis+sentinel://127.0.0.1:{self.port}/{self.name}/{db}"

    def command(self, *args: Any, timeout: float = 5.0) -> Any:
        """One command to the Sentinel, blocking."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            s.sendall(_encode(*args))
            return _Reader(s).reply()

    def master_port(self) -> int:
        """The port of the master the Sentinel names now."""
        _, port = self.command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.name)
        return int(port)

    def wait(self, condition: Any, what: str, timeout: float = 30.0) -> None:
        """Poll C{condition()} (errors count as false) until true, or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except (OSError, ValueError, TypeError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"the Sentinel did not {what} within {timeout}s")

    def knows_replica(self, replica: RedisServer) -> bool:
        """Whether the Sentinel lists C{replica} as a replica it can promote."""
        for fields in self.command("SENTINEL", "REPLICAS", self.name) or []:
            info = dict(zip(fields[::2], fields[1::2], strict=False))
            if (
                info.get(b"port") == str(replica.port).encode()
                and info.get(b"flags") == b"slave"
                and info.get(b"master-link-status") == b"ok"
            ):
                return True
        return False
