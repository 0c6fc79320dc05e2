"""
Worker processes, measured side by side in one run (a script, not a test):

    apt-get install gcc libssl-dev      # to compile bench/loadgen.c
    pip install uvicorn                 # the Python peer
    python bench/workers.py             # about 8 minutes
    python bench/workers.py --quick --json out.json
    python bench/workers.py --load s_time --concurrency 4
    python bench/handshakes.py --workers    # the same, from the main script

1. Throughput of resumed TLS 1.2 handshakes (tickets) for `twist resumetls
   --workers 1` and `--workers 2`, nginx with `worker_processes 1` and
   `2`, and `uvicorn --workers 1` and `2` with TLS; each serving a 3-byte
   response and closing.  The load runs on the same two cores as the
   servers, and is measured at several counts of clients in flight
   (`--concurrency`, 4,16,64 by default): how many connections wait on a
   server decides how busy each worker is, and so how much each wake-up
   of a worker serves.  The load is `bench/loadgen.c` (`--load loadgen`,
   the default: one process, one epoll loop, that many connections at once,
   each a returning client resuming its last session), or that many
   `openssl s_time -reuse` processes (`--load s_time`: one blocking process
   a client, each costing about twice loadgen's CPU a handshake, CPU taken
   from the servers on a machine this size).  Handshakes per second (wall
   clock), server CPU per handshake (every process of the server, from
   /proc), load CPU per handshake (from rusage), and the cores the two kept
   busy: near 2, the machine is the limit.
2. Returning clients that resume across workers: 20 clients each make a
   full handshake, then come back once (`openssl s_client -sess_in`), for
   TLS 1.2 and 1.3, against each server with 2 workers.  A return that
   lands on the other worker resumes only if the workers share sessions
   and ticket keys.

The per-core comparison with a minimal protocol (asyncio, uvloop, plain
Twisted) is `bench/percore.py`.  Rounds are interleaved (every server once
per round, in rotating order) and figures are medians of the rounds.
"""

from __future__ import annotations

import argparse
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
    TICK,
    free_port,
    loadgen,
    loadgen_binary,
    make_keys,
    publish,
    resumetls_argv,
    s_time,
    server_environment,
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

NGINX_WORKERS = NGINX_CONF.replace("master_process off;\n", "").replace(
    "worker_processes 1;", "worker_processes {workers};"
)


class Server:
    def __init__(self, name: str, workers: int, keys: tuple[str, str], work: str):
        self.name, self.workers = name, workers
        self.cert, self.key = keys
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(dir=work)
        env = server_environment(work)
        www = os.path.join(work, "www")
        if name == "resumetls":
            argv = resumetls_argv(
                self.port, self.cert, self.key, www, "--workers", str(workers)
            )
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
        else:
            raise ValueError(name)
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


def _children_cpu() -> float:
    """CPU seconds of the child processes this process has waited for."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _s_time_load(server: Server, seconds: int, concurrency: int) -> tuple[int, int]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(concurrency) as pool:
        runs = list(
            pool.map(
                lambda _: s_time(server.port, "1.2", True, seconds), range(concurrency)
            )
        )
    return sum(r[0] for r in runs), sum(r[1] for r in runs)


def throughput(server: Server, seconds: int, concurrency: int, load: str) -> dict:
    """
    Resumed TLS 1.2 handshakes with C{concurrency} clients in flight: that
    many C{s_time} processes (C{load} "s_time"), or one loadgen process
    with that many connections at once (C{load}: the loadgen binary).
    """
    before, load_before = server.cpu(), _children_cpu()
    start = time.perf_counter()
    if load == "s_time":
        n, reused = _s_time_load(server, seconds, concurrency)
    else:
        n, reused, _ = loadgen(load, server.port, True, seconds, concurrency)
    wall = time.perf_counter() - start
    server_us = (server.cpu() - before) / n * 1e6
    # The load processes (waited for by this process: its children).
    load_us = (_children_cpu() - load_before) / n * 1e6
    return {
        "handshakes": n,
        "reused": reused,
        # Of the returning connections: every client's first one is full.
        # (s_time makes its first one before it starts counting).
        "resumed_share": reused / max(1, n if load == "s_time" else n - concurrency),
        "rate": n / wall,
        "cpu_us": server_us,
        "load_cpu_us": load_us,
        # CPU the server and the load kept busy, in cores (2 is all of it).
        "cores_busy": (server_us + load_us) * n / wall / 1e6,
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
    load = "s_time" if args.load == "s_time" else loadgen_binary(work)
    report: dict = {
        "throughput": {},
        "returning": {},
        "load": args.load,
        "loadavg": None,
    }
    servers = []
    try:
        for name in args.servers:
            if name == "nginx" and not NGINX:
                continue
            for workers in (1, 2):
                servers.append(Server(name, workers, keys, work))
        for r in range(args.rounds):
            order = servers[r % len(servers) :] + servers[: r % len(servers)]
            for concurrency in args.concurrency:
                for server in order:
                    result = throughput(server, args.seconds, concurrency, load)
                    report["throughput"].setdefault(str(concurrency), {}).setdefault(
                        server.label, []
                    ).append(result)
                    print(
                        f"round {r + 1}/{args.rounds} {concurrency:3} at once "
                        f"{server.label:13} {result['rate']:6.0f}/s",
                        file=sys.stderr,
                    )
        for server in servers:
            if server.workers == 2:
                for version in ("1.2", "1.3"):
                    report["returning"][f"{server.label} TLS {version}"] = returning(
                        server, version, args.clients, work
                    )
        report["loadavg"] = os.getloadavg()
        for server in servers:
            server.stop()
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return report


def _median(runs: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def _ratio(mine: list[dict], theirs: list[dict]) -> float:
    """The median over rounds of mine's rate over theirs (same round)."""
    return statistics.median(
        a["rate"] / b["rate"] for a, b in zip(mine, theirs, strict=True)
    )


def table(report: dict) -> str:
    load = (
        "`s_time` processes"
        if report["load"] == "s_time"
        else "connections of one loadgen"
    )
    lines = [
        f"| clients at once ({load}) | server | resumed TLS 1.2 handshakes/s "
        "| resumed | server CPU µs/handshake | load CPU µs/handshake "
        "| cores busy (server + load) | 2 vs 1 |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for concurrency, runs_by in report["throughput"].items():
        for label, runs in runs_by.items():
            name, workers = label.rsplit(" x", 1)
            one = runs_by.get(f"{name} x1")
            ratio = f"{_ratio(runs, one):.2f}x" if workers == "2" and one else ""
            lines.append(
                f"| {concurrency} | {label} | {_median(runs, 'rate'):.0f} "
                f"| {_median(runs, 'resumed_share'):.0%} "
                f"| {_median(runs, 'cpu_us'):.0f} "
                f"| {_median(runs, 'load_cpu_us'):.0f} "
                f"| {_median(runs, 'cores_busy'):.2f} | {ratio} |"
            )
    lines += ["", "| 2 workers | returning clients resumed |", "|---|---:|"]
    for label, r in report["returning"].items():
        lines.append(f"| {label} | {r['resumed']} of {r['clients']} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument(
        "--load",
        choices=("loadgen", "s_time"),
        default="loadgen",
        help="the load: bench/loadgen.c (compiled here) or openssl s_time",
    )
    parser.add_argument(
        "--concurrency",
        default="4,16,64",
        help="clients in flight at once: a comma-separated list, each measured",
    )
    parser.add_argument(
        "--servers",
        default="resumetls,nginx,uvicorn",
        help="a comma-separated subset of resumetls, nginx, uvicorn",
    )
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--json", help="write the report here too")
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    args.servers = args.servers.split(",")
    if args.quick:
        args.rounds, args.seconds, args.clients = 1, 2, 6
        args.concurrency = args.concurrency[-1:]
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    publish(run(args), table, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
