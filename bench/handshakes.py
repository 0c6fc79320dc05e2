"""
What resumption saves, measured side by side in one run:

    python bench/handshakes.py            # the full table (about 11 minutes)
    python bench/handshakes.py --quick    # fewer, shorter runs
    python bench/handshakes.py --smoke --json out.json   # what the test suite runs
    python bench/handshakes.py --workers  # bench/workers.py: 1 vs 2 workers
    python bench/handshakes.py --per-core # bench/percore.py: minimal protocol

Servers, each on a free loopback port with the same certificate and key,
serving the same 3-byte file over HTTP/1.0 (each response closes the
connection): resumetls (`twist resumetls --path`, in-memory cache, tickets),
plain Twisted (`twist web --listen ssl:…`, no resumption: full handshakes
only), `openssl s_server -WWW` and nginx (Debian's package, one worker
process, `ssl_session_cache shared`, tickets on).

Load generator: `openssl s_time` (C; `-new` for full handshakes, `-reuse` to
offer the first connection's session on every later one; it fetches the file
on each connection, so TLS 1.3 tickets are received).  Workloads, for TLS 1.2
and 1.3 and RSA-2048 and ECDSA P-256: full handshakes; resumed by session ID
(server tickets off; in TLS 1.3 that is a stateful ticket); resumed by ticket.
Figures: handshakes per second (wall clock around s_time) and server CPU per
handshake (utime+stime of the server process from /proc, so the load
generator's CPU does not count); medians of the runs with min-max.  Every
server is started first and the runs are interleaved: each round measures
every server on every workload (in an order that rotates from round to
round), so the machine's drift over minutes falls on all alike, and each
ratio is the median of the ratios within a round.  Resumed
runs are checked against the server's own counters (resumetls's Prometheus
metrics, nginx's `$ssl_session_reused` in its access log; s_server has no
counters, s_time's per-connection `r` marks stand in).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

OPENSSL = shutil.which("openssl") or "openssl"
NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
)
TICK = os.sysconf("SC_CLK_TCK")

SERVERS = ("resumetls", "twisted", "s_server", "nginx")
WORKLOADS = ("full", "session-id", "ticket")
VERSIONS = ("1.2", "1.3")
KEYS = ("rsa", "ecdsa")


# -- set-up ---------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def make_keys(directory: str) -> dict[str, tuple[str, str]]:
    from resumetls.certificates import issue_certificate, write_pem_files

    out = {}
    for kind in KEYS:
        cert, key = issue_certificate(
            "localhost",
            dns_names=["localhost"],
            kind="rsa" if kind == "rsa" else "ec",
            backdate=datetime.timedelta(minutes=5),
            valid_for=datetime.timedelta(days=2),
        )
        out[kind] = write_pem_files(
            cert,
            key,
            os.path.join(directory, f"{kind}-cert.pem"),
            os.path.join(directory, f"{kind}-key.pem"),
        )
    return out


NGINX_CONF = """
daemon off;
master_process off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    log_format resumed '$ssl_session_reused';
    access_log {tmp}/access.log resumed;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        ssl_session_tickets {tickets};
        keepalive_timeout 0;
        root {www};
    }}
}}
"""


def server_environment(work: str) -> dict[str, str]:
    """A server's environment: this checkout on the path, caches in C{work}."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["XDG_CACHE_HOME"] = os.path.join(work, "cache")
    return env


def resumetls_argv(
    port: int, cert: str, key: str, www: str, *options: str
) -> list[str]:
    """C{twist resumetls} serving the files in C{www} on 127.0.0.1:C{port}."""
    return [
        sys.executable,
        "-m",
        "twisted",
        "resumetls",
        "--port",
        str(port),
        "--interface",
        "127.0.0.1",
        "--certificate",
        cert,
        "--key",
        key,
        "--path",
        www,
        *options,
    ]


class Server:
    """One server process, with its own CPU accounting and counters."""

    def __init__(self, name: str, keys: tuple[str, str], tickets: bool, work: str):
        self.name = name
        self.cert, self.key = keys
        self.tickets = tickets
        self.work = work
        self.port = free_port()
        self.metrics = None
        self.tmp = tempfile.mkdtemp(dir=work)
        self.www = os.path.join(work, "www")
        env = server_environment(work)
        cwd = self.tmp
        if name == "resumetls":
            self.metrics = free_port()
            argv = resumetls_argv(
                self.port,
                self.cert,
                self.key,
                self.www,
                "--metrics",
                str(self.metrics),
            )
            if not tickets:
                argv.append("--no-tickets")
        elif name == "twisted":
            argv = [
                sys.executable,
                "-m",
                "twisted",
                "web",
                "--listen",
                f"ssl:{self.port}:interface=127.0.0.1:privateKey={self.key}"
                f":certKey={self.cert}",
                "--path",
                self.www,
            ]
        elif name == "s_server":
            argv = [
                OPENSSL,
                "s_server",
                "-accept",
                f"127.0.0.1:{self.port}",
                "-cert",
                self.cert,
                "-key",
                self.key,
                "-WWW",
                "-quiet",
            ]
            if not tickets:
                argv.append("-no_ticket")
            cwd = self.www
        elif name == "nginx":
            conf = os.path.join(self.tmp, "nginx.conf")
            with open(conf, "w") as f:
                f.write(
                    NGINX_CONF.format(
                        tmp=self.tmp,
                        port=self.port,
                        cert=self.cert,
                        key=self.key,
                        www=self.www,
                        tickets="on" if tickets else "off",
                    )
                )
            argv = [NGINX, "-p", self.tmp, "-c", conf]
        else:
            raise ValueError(name)
        self.log = open(os.path.join(self.tmp, "output.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self.port, self.proc)
        if self.metrics:
            wait_for(self.metrics, self.proc)

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def counters(self) -> dict[str, float]:
        """Handshake counts by kind, from the server itself where it has any."""
        if self.name == "resumetls":
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics}/metrics", timeout=10
            ) as r:
                text = r.read().decode()
            out = {}
            for m in re.finditer(
                r'^resumetls_handshakes_total\{kind="(\w+)".*\} (\S+)$', text, re.M
            ):
                out[m.group(1)] = float(m.group(2))
            return {
                "full": out.get("full", 0),
                "resumed": sum(v for k, v in out.items() if k != "full"),
            }
        if self.name == "nginx":
            try:
                with open(os.path.join(self.tmp, "access.log")) as f:
                    marks = f.read().split()
            except FileNotFoundError:
                marks = []
            return {"full": marks.count("."), "resumed": marks.count("r")}
        return {}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(
                signal.SIGTERM if self.name != "nginx" else signal.SIGQUIT
            )
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def s_time(
    port: int, version: str, reuse: bool, seconds: int
) -> tuple[int, int, float]:
    """Run s_time; returns (connections, connections marked reused, wall s)."""
    argv = [
        OPENSSL,
        "s_time",
        "-connect",
        f"127.0.0.1:{port}",
        "-www",
        "/ok.txt",
        "-time",
        str(seconds),
        "-reuse" if reuse else "-new",
        "-tls1_2" if version == "1.2" else "-tls1_3",
    ]
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.perf_counter() - start
    m = re.search(r"(\d+) connections in [\d.]+ real seconds", out.stdout)
    if m is None:
        raise RuntimeError(f"s_time failed: {out.stdout[-500:]} {out.stderr[-500:]}")
    # s_time prints one mark a timed connection: "r" if the session was
    # reused, "*" if not (other text, such as "starting", is skipped).
    body = out.stdout
    if reuse:
        body = body.split("Now timing with session id reuse.", 1)[-1]
    marks = "".join(re.findall(r"^[r*t3]+$", body, re.M))
    return int(m.group(1)), marks.count("r"), wall


def loadgen_binary(work: str) -> str:
    """
    bench/loadgen.c compiled into C{work} (needs a C compiler and OpenSSL's
    headers: Debian's gcc and libssl-dev).

    @raise RuntimeError: it cannot be compiled, with the compiler's words.
    """
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        raise RuntimeError("no C compiler for bench/loadgen.c: apt-get install gcc")
    binary = os.path.join(work, "loadgen")
    source = os.path.join(ROOT, "bench", "loadgen.c")
    made = subprocess.run(
        [compiler, "-O2", "-o", binary, source, "-lssl", "-lcrypto"],
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise RuntimeError(
            "bench/loadgen.c does not compile (OpenSSL's headers: apt-get install "
            f"libssl-dev; or use s_time):\n{made.stderr[-1000:]}"
        )
    return binary


def loadgen(
    binary: str, port: int, reuse: bool, seconds: int, concurrency: int
) -> tuple[int, int, float]:
    """
    Run loadgen: C{concurrency} TLS 1.2 clients at once, returning clients
    (C{reuse}) or full handshakes; returns (connections, reused, wall s).

    @raise RuntimeError: it failed, or some connections did.
    """
    argv = [binary, "127.0.0.1", str(port), str(seconds), str(concurrency), "1.2"]
    argv += ["/ok.txt"] if reuse else ["/ok.txt", "new"]
    start = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    wall = time.perf_counter() - start
    m = re.match(r"(\d+) connections (\d+) reused (\d+) failed", out.stdout)
    if m is None or out.returncode != 0:
        raise RuntimeError(f"loadgen failed: {out.stdout[-300:]} {out.stderr[-300:]}")
    if int(m.group(3)):
        raise RuntimeError(f"loadgen: {m.group(3)} connections failed")
    return int(m.group(1)), int(m.group(2)), wall


def measure(server: Server, version: str, workload: str, seconds: int) -> dict:
    before_cpu = server.cpu()
    before = server.counters()
    n, reused, wall = s_time(server.port, version, workload != "full", seconds)
    after_cpu = server.cpu()
    after = server.counters()
    result = {
        "handshakes": n,
        "rate": n / wall,
        "cpu_per_handshake_us": (after_cpu - before_cpu) / n * 1e6 if n else None,
        "client_reused": reused,
    }
    if before or after:
        result["server_full"] = after.get("full", 0) - before.get("full", 0)
        result["server_resumed"] = after.get("resumed", 0) - before.get("resumed", 0)
    return result


# -- memory per cached session -------------------------------------------------------

_MEMORY = r"""
import os, sys
sys.path.insert(0, {root!r})
from OpenSSL import SSL
from twisted.internet.task import Clock
from resumetls import MemorySessionCache
der = bytes.fromhex({der!r})
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
cache = MemorySessionCache(max_entries={n}, clock=Clock())
urandom = os.urandom
cache.store_now(urandom(48), der, 3600)  # warm up allocators and code
cache.remove_now(next(iter(cache._entries)))
before = rss()
# Each session's ID and DER are made here, so the growth counts everything a
# stored session keeps alive: its key, its value and the table's entry.
for _ in range({n}):
    cache.store_now(urandom(48), der[:-8] + urandom(8), 3600)
after = rss()
print((after - before) / {n}, len(der), cache.stats().bytes / {n})
"""


def session_der() -> bytes:
    """The DER of a real TLS 1.3 session from an in-memory handshake."""
    from OpenSSL import SSL

    from resumetls import ResumingContextFactory, ResumptionSettings
    from resumetls.openssl.sessions import session_to_der

    work = tempfile.mkdtemp()
    cert, key = make_keys(work)["ecdsa"]
    factory = ResumingContextFactory.from_files(
        cert, key, ResumptionSettings(tickets=False)
    )
    server = SSL.Connection(factory.getContext(), None)
    server.set_accept_state()
    cctx = SSL.Context(SSL.TLS_METHOD)
    client = SSL.Connection(cctx, None)
    client.set_connect_state()
    for _ in range(20):
        for a, b in ((client, server), (server, client)):
            try:
                a.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                data = a.bio_read(65536)
                b.bio_write(data)
            except SSL.WantReadError:
                pass
    shutil.rmtree(work, ignore_errors=True)
    return session_to_der(server.get_session())


def memory_per_session(n: int = 100_000) -> dict:
    der = session_der()
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY.format(root=ROOT, der=der.hex(), n=n)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout.split()
    per, der_size, accounted = float(out[0]), int(out[1]), float(out[2])
    return {
        "sessions": n,
        "rss_per_session": per,
        "der_bytes": der_size,
        "target": 2 * der_size + 200,
        "cache_bytes_per_session": accounted,
    }


# -- the run ---------------------------------------------------------------------------


def run(args: argparse.Namespace) -> dict:
    servers = [s for s in args.servers.split(",") if s]
    if "nginx" in servers and NGINX is None:
        print(
            "nginx is not installed: skipping it (apt-get install nginx)",
            file=sys.stderr,
        )
        servers.remove("nginx")
    keys_wanted = args.keys.split(",")
    work = tempfile.mkdtemp(prefix="resumetls-bench-")
    os.makedirs(os.path.join(work, "www"))
    with open(os.path.join(work, "www", "ok.txt"), "w") as f:
        f.write("ok\n")
    keys = make_keys(work)
    # Every server process is started first and they all stay up: the runs
    # are then interleaved (round r measures every server on every
    # workload, in an order that rotates each round), so the machine's
    # drift over minutes falls on all servers alike, and the ratios are
    # taken within a round.
    started: dict[tuple[str, str, bool], Server] = {}
    cells: list[tuple[str, str, str, str]] = []  # (server, key, version, workload)
    try:
        for name in servers:
            for kind in keys_wanted:
                for tickets in (True, False):
                    if name == "twisted" and not tickets:
                        continue  # plain Twisted never resumes: full only
                    started[(name, kind, tickets)] = Server(
                        name, keys[kind], tickets, work
                    )
        for version in VERSIONS:
            for kind in keys_wanted:
                for workload in WORKLOADS:
                    for name in servers:
                        if name == "twisted" and workload != "full":
                            continue
                        cells.append((name, kind, version, workload))
        runs: dict[tuple[str, str, str, str], list[dict]] = {c: [] for c in cells}
        for round_number in range(args.runs):
            shift = round_number % len(servers)
            order = servers[shift:] + servers[:shift]
            for version in VERSIONS:
                for kind in keys_wanted:
                    for workload in WORKLOADS:
                        for name in order:
                            cell = (name, kind, version, workload)
                            if cell not in runs:
                                continue
                            server = started[(name, kind, workload != "session-id")]
                            result = measure(server, version, workload, args.seconds)
                            result["round"] = round_number
                            runs[cell].append(result)
                            print(
                                f"round {round_number + 1}/{args.runs} {name:9} "
                                f"{kind:5} TLS{version} {workload:10} "
                                f"{result['rate']:8.0f}/s",
                                file=sys.stderr,
                            )
        results = [
            {
                "server": name,
                "key": kind,
                "version": version,
                "workload": workload,
                "runs": runs[(name, kind, version, workload)],
            }
            for (name, kind, version, workload) in cells
        ]
    finally:
        for server in started.values():
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report = {"results": results, "machine": machine()}
    if args.json:
        save(report, args.json)
    if not args.smoke:
        report["memory"] = memory_per_session()
        from bench import hot_path

        report["ticket_callback_us"] = hot_path.ticket_callback(20000)
        report["cache_us"] = hot_path.cache(20000)
    return report


def save(report: dict, path: str) -> None:
    """Write a report as JSON (every bench script's --json)."""
    with open(path, "w") as f:
        json.dump(report, f, indent=2)


def publish(report: dict, table: Callable[[dict], str], path: str | None) -> None:
    """Add C{table(report)} to the report, print it, and save it to C{path}."""
    report["table"] = table(report)
    print(report["table"])
    if path:
        save(report, path)


def machine() -> dict:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions = {
        "openssl_cli": subprocess.run(
            [OPENSSL, "version"], capture_output=True, text=True
        ).stdout.strip()
    }
    if NGINX:
        versions["nginx"] = subprocess.run(
            [NGINX, "-v"], capture_output=True, text=True
        ).stderr.strip()
    from resumetls.openssl.report import route_report

    versions["openssl_in_cryptography"] = route_report()["openssl_version"]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        **versions,
    }


def _med(values: list[float]) -> float:
    return statistics.median(values)


def _ratio(a: list[dict], b: list[dict]) -> float:
    """
    The median, over the rounds both were measured in, of a's rate over b's
    (runs of one round are measured within seconds of each other).
    """
    by_round = {x.get("round", i): x["rate"] for i, x in enumerate(b)}
    ratios = [
        x["rate"] / by_round[x.get("round", i)]
        for i, x in enumerate(a)
        if by_round.get(x.get("round", i))
    ]
    return _med(ratios) if ratios else float("nan")


def table(report: dict) -> str:
    by = {}
    for r in report["results"]:
        by[(r["server"], r["key"], r["version"], r["workload"])] = r["runs"]
    servers = [s for s in SERVERS if any(k[0] == s for k in by)]
    lines = []
    head = ["TLS", "key", "workload"]
    for s in servers:
        head += [f"{s} hs/s", f"{s} CPU µs/hs"]
    head += ["resumetls/twisted", "resumetls/s_server", "resumetls resumed/full"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for version in VERSIONS:
        for kind in KEYS:
            for workload in WORKLOADS:
                if not any((s, kind, version, workload) in by for s in servers):
                    continue
                row = [
                    f"1.{version[-1]}",
                    "RSA-2048" if kind == "rsa" else "P-256",
                    workload,
                ]
                rates = {}
                for s in servers:
                    runs = by.get((s, kind, version, workload))
                    if not runs:
                        row += ["n/a", "n/a"]
                        continue
                    rate = [x["rate"] for x in runs]
                    cpu = [
                        x["cpu_per_handshake_us"]
                        for x in runs
                        if x["cpu_per_handshake_us"]
                    ]
                    rates[s] = _med(rate)
                    row.append(f"{_med(rate):.0f} ({min(rate):.0f}-{max(rate):.0f})")
                    row.append(f"{_med(cpu):.0f}" if cpu else "-")
                rt = rates.get("resumetls")
                mine = by.get(("resumetls", kind, version, workload))
                for other in ("twisted", "s_server"):
                    theirs = by.get((other, kind, version, workload))
                    row.append(f"{_ratio(mine, theirs):.2f}" if mine and theirs else "")
                full = by.get(("resumetls", kind, version, "full"))
                if rt and full and workload != "full":
                    row.append(f"{_ratio(mine, full):.2f}")
                else:
                    row.append("")
                lines.append("| " + " | ".join(row) + " |")
    out = "\n".join(lines) + "\n"
    if "memory" in report:
        m = report["memory"]
        out += (
            f"\nMemory per cached session (in-memory cache, {m['sessions']} sessions): "
            f"{m['rss_per_session']:.0f} bytes of RSS for a {m['der_bytes']}-byte "
            f"DER session (target <= {m['target']}).\n"
        )
    if "ticket_callback_us" in report:
        t = report["ticket_callback_us"]
        c = report["cache_us"]
        out += (
            f"One ticket callback: {t['encrypt']:.1f} µs to encrypt, "
            f"{t['decrypt']:.1f} µs to decrypt; one cache lookup "
            f"{c['lookup']:.2f} µs, one store {c['store']:.2f} µs.\n"
        )
    return out


def main() -> int:
    # One entry point: the worker and per-core comparisons live in scripts
    # of their own (bench/workers.py, bench/percore.py) and run from here.
    for flag, script in (("--workers", "workers"), ("--per-core", "percore")):
        if flag in sys.argv[1:]:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            module = __import__(script)
            return module.main([a for a in sys.argv[1:] if a != flag])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=2, help="s_time -time per run")
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--keys", default=",".join(KEYS))
    parser.add_argument("--quick", action="store_true", help="3 runs of 1 second")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1 run of 1 second, ECDSA only, no memory figures",
    )
    parser.add_argument("--json", help="also write the raw results here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.seconds = 3, 1
    if args.smoke:
        args.runs, args.seconds, args.keys = 1, 1, "ecdsa"
    # SIGTERM unwinds like Ctrl-C, so the servers started so far are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = run(args)
    if args.json:
        save(report, args.json)
    print(table(report))
    m = report["machine"]
    print(
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, "
        f"{m['openssl_cli']} (s_server, s_time), {m['openssl_in_cryptography']} "
        f"(resumetls, Twisted){', ' + m['nginx'] if 'nginx' in m else ''}."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
