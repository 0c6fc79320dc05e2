"""
Worker processes, measured side by side in one run (a script, not a test):

    pip install uvicorn uvloop          # the Python peers
    python bench/workers.py             # about 6 minutes
    python bench/workers.py --quick --json out.json

1. Throughput of resumed TLS 1.2 handshakes (tickets; `openssl s_time
   -reuse`, two load generators at once, on the same 2 cores) for
   `twist resumetls --workers 1` and `--workers 2`, nginx with
   `worker_processes 1` and `2`, and `uvicorn --workers 1` and `2` with TLS;
   each serving a 3-byte response and closing.  Handshakes per second (wall
   clock) and server CPU per handshake (every process of the server, from
   /proc).
2. Returning clients that resume across workers: 20 clients each make a
   full handshake, then come back once (`openssl s_client -sess_in`), for
   TLS 1.2 and 1.3, against each server with 2 workers.  A return that
   lands on the other worker resumes only if the workers share sessions
   and ticket keys.
3. Per core, with a minimal protocol (answer, close): server CPU per
   resumed TLS 1.2 handshake, single process, for resumetls, plain
   Twisted (`listenSSL`, OpenSSL's own cache), an asyncio `ssl` server and
   the same under uvloop; handshakes per second per core = 1e6 / µs.

Rounds are interleaved (every server once per round, in rotating order)
and figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from handshakes import (  # noqa: E402
    NGINX,
    NGINX_CONF,
    OPENSSL,
    ROOT,
    TICK,
    free_port,
    make_keys,
    s_time,
    wait_for,
)

# -- the servers ------------------------------------------------------------------

ASGI_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"3"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b"ok\\n"})
"""

MINIMAL = r"""
import asyncio, ssl, sys
kind, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
RESPONSE = b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
if kind in ("asyncio", "uvloop"):
    if kind == "uvloop":
        import uvloop
        uvloop.install()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async def handle(reader, writer):
        await reader.read(1024)
        writer.write(RESPONSE)
        writer.close()
    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, ssl=ctx,
                                            backlog=511)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
else:
    from twisted.internet import reactor, ssl as tssl
    from twisted.internet.protocol import Factory, Protocol
    class Answer(Protocol):
        def dataReceived(self, data):
            self.transport.write(RESPONSE)
            self.transport.loseConnection()
    factory = Factory.forProtocol(Answer)
    if kind == "twisted":
        from twisted.internet.ssl import CertificateOptions, PrivateCertificate
        pem = open(cert).read() + open(key).read()
        options = PrivateCertificate.loadPEM(pem).options()
        options.enableSessions = True
        options.enableSessionTickets = True
        reactor.listenSSL(port, factory, options, backlog=511, interface="127.0.0.1")
    else:
        from twisted.internet.endpoints import serverFromString
        serverFromString(reactor, f"resumetls:{port}:interface=127.0.0.1:"
                         f"certKey={cert}:privateKey={key}").listen(factory)
    reactor.run()
"""

NGINX_WORKERS = NGINX_CONF.replace("master_process off;\n", "").replace(
    "worker_processes 1;", "worker_processes {workers};"
)


class Server:
    def __init__(self, name: str, workers: int, keys: tuple[str, str], work: str):
        self.name, self.workers = name, workers
        self.cert, self.key = keys
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(dir=work)
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
        env["XDG_CACHE_HOME"] = os.path.join(work, "cache")
        www = os.path.join(work, "www")
        if name == "resumetls":
            argv = [
                sys.executable,
                "-m",
                "twisted",
                "resumetls",
                "--workers",
                str(workers),
                "--port",
                str(self.port),
                "--interface",
                "127.0.0.1",
                "--certificate",
                self.cert,
                "--key",
                self.key,
                "--path",
                www,
            ]
        elif name == "nginx":
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(
                    NGINX_WORKERS.format(
                        tmp=self.tmp,
                        port=self.port,
                        cert=self.cert,
                        key=self.key,
                        www=www,
                        tickets="on",
                        workers=workers,
                    )
                )
            argv = [NGINX, "-p", self.tmp, "-c", conf]
        elif name == "uvicorn":
            with open(os.path.join(self.tmp, "asgi.py"), "w") as f:
                f.write(ASGI_APP)
            argv = [
                sys.executable,
                "-m",
                "uvicorn",
                "asgi:app",
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--ssl-certfile",
                self.cert,
                "--ssl-keyfile",
                self.key,
                "--log-level",
                "warning",
                "--no-access-log",
            ]
        else:  # minimal protocol, one process
            script = os.path.join(self.tmp, "minimal.py")
            with open(script, "w") as f:
                f.write(MINIMAL)
            argv = [sys.executable, script, name, str(self.port), self.cert, self.key]
        self.log = open(os.path.join(self.tmp, "output.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=self.tmp,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(self.port, self.proc)
        time.sleep(1.0 if workers > 1 else 0.2)  # every worker up

    @property
    def label(self) -> str:
        return f"{self.name} x{self.workers}"

    def pids(self) -> list[int]:
        """The server's process and all its descendants."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def cpu(self) -> float:
        total = 0.0
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / TICK
        return total

    def stop(self) -> None:
        sig = signal.SIGQUIT if self.name == "nginx" else signal.SIGTERM
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()


# -- measurements -----------------------------------------------------------------


def throughput(server: Server, seconds: int, generators: int) -> dict:
    """Resumed TLS 1.2 handshakes from several s_time processes at once."""
    from concurrent.futures import ThreadPoolExecutor

    before = server.cpu()
    start = time.perf_counter()
    with ThreadPoolExecutor(generators) as pool:
        runs = list(
            pool.map(
                lambda _: s_time(server.port, "1.2", True, seconds), range(generators)
            )
        )
    wall = time.perf_counter() - start
    n = sum(r[0] for r in runs)
    return {
        "handshakes": n,
        "reused": sum(r[1] for r in runs),
        "rate": n / wall,
        "cpu_us": (server.cpu() - before) / n * 1e6 if n else None,
    }


def returning(server: Server, version: str, clients: int, work: str) -> dict:
    """How many of C{clients} returning clients resumed."""
    reused = 0
    for i in range(clients):
        path = os.path.join(work, f"sess-{server.label}-{version}-{i}.pem")
        flag = "-tls1_2" if version == "1.2" else "-tls1_3"
        for args in (["-sess_out", path], ["-sess_in", path]):
            out = subprocess.run(
                [
                    OPENSSL,
                    "s_client",
                    "-connect",
                    f"127.0.0.1:{server.port}",
                    "-ign_eof",
                    flag,
                    *args,
                ],
                input=b"GET /ok.txt HTTP/1.0\r\n\r\n",
                capture_output=True,
                timeout=30,
            ).stdout.decode("latin-1")
        reused += bool(re.search(r"^Reused,", out, re.M))
    return {"clients": clients, "resumed": reused}


def run(args: argparse.Namespace) -> dict:
    work = tempfile.mkdtemp(prefix="resumetls-bench-workers-")
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "ok.txt"), "w") as f:
        f.write("ok\n")
    keys = make_keys(work)["ecdsa"]
    report: dict = {"throughput": {}, "returning": {}, "per_core": {}}
    servers = []
    try:
        for name in ("resumetls", "nginx", "uvicorn"):
            if name == "nginx" and not NGINX:
                continue
            for workers in (1, 2):
                servers.append(Server(name, workers, keys, work))
        minimal = [
            Server(k, 1, keys, work)
            for k in ("resumetls-min", "twisted", "asyncio", "uvloop")
        ]
        for r in range(args.rounds):
            order = servers[r % len(servers) :] + servers[: r % len(servers)]
            for server in order:
                report["throughput"].setdefault(server.label, []).append(
                    throughput(server, args.seconds, 2)
                )
            order = minimal[r % len(minimal) :] + minimal[: r % len(minimal)]
            for server in order:
                report["per_core"].setdefault(server.name, []).append(
                    throughput(server, args.seconds, 1)
                )
        for server in servers:
            if server.workers == 2:
                for version in ("1.2", "1.3"):
                    report["returning"][f"{server.label} TLS {version}"] = returning(
                        server, version, args.clients, work
                    )
        for server in minimal + servers:
            server.stop()
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report


def _median(runs: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def table(report: dict) -> str:
    lines = [
        "| server | resumed TLS 1.2 handshakes/s | server CPU µs/handshake | 2 vs 1 |",
        "|---|---:|---:|---:|",
    ]
    rates = {k: _median(v, "rate") for k, v in report["throughput"].items()}
    for label, runs in report["throughput"].items():
        name, workers = label.rsplit(" x", 1)
        ratio = ""
        if workers == "2" and f"{name} x1" in rates:
            ratio = f"{rates[label] / rates[name + ' x1']:.2f}x"
        lines.append(
            f"| {label} | {rates[label]:.0f} | "
            f"{_median(runs, 'cpu_us'):.0f} | {ratio} |"
        )
    lines += ["", "| 2 workers | returning clients resumed |", "|---|---:|"]
    for label, r in report["returning"].items():
        lines.append(f"| {label} | {r['resumed']} of {r['clients']} |")
    lines += [
        "",
        "| one process, minimal protocol | server CPU µs per resumed "
        "TLS 1.2 handshake | handshakes/s per core | vs asyncio |",
        "|---|---:|---:|---:|",
    ]
    cpu = {k: _median(v, "cpu_us") for k, v in report["per_core"].items()}
    for name, us in cpu.items():
        vs = f"{cpu['asyncio'] / us:.2f}x" if "asyncio" in cpu else ""
        lines.append(f"| {name} | {us:.0f} | {1e6 / us:.0f} | {vs} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds, args.clients = 1, 2, 6
    report = run(args)
    report["table"] = table(report)
    print(report["table"])
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
