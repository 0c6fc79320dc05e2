"""
The hot path's costs, in microseconds, and what reaching OpenSSL costs at
start-up.  A script, not a test:

    python bench/hot_path.py [--iterations N] [--runs R]

Prints a markdown table of medians over R runs (with min-max):

- one ticket callback (encrypt, decrypt), entered from C the way OpenSSL
  enters it, through a real ResumingContextFactory and key ring;
- one in-memory cache lookup and store (the calls the session callbacks make);
- the start-up cost of the OpenSSL route: cold (symbol table read with
  pyelftools) and warm (offsets from the on-disk cache), each measured in a
  fresh interpreter and net of importing pyOpenSSL itself.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _options():
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from twisted.internet.ssl import CertificateOptions

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return CertificateOptions(privateKey=key, certificate=cert)


def measure_ticket_callback(hooks, iterations: int) -> dict[str, float]:
    """
    Microseconds per call of our ticket callback (L{TicketKeyCallback}),
    entered from C the way OpenSSL enters it (real EVP cipher and MAC
    contexts, no connection), for encryption and for decryption.
    """
    from resumetls.openssl.callbacks import TicketKeyCallback
    from resumetls.openssl.ffi import TICKET_CB, ffi
    from resumetls.openssl.functions import TICKET_CALLBACK
    from resumetls.openssl.symbols import route

    r = route()
    r.require(TICKET_CALLBACK)
    fn = r.function
    helper = TicketKeyCallback(r, hooks)
    call = ffi.cast(TICKET_CB.replace("(", "(*)(", 1), helper.callback)
    cctx = fn("EVP_CIPHER_CTX_new")()
    mac = fn("EVP_MAC_fetch")(ffi.NULL, b"HMAC", ffi.NULL)
    hctx = fn("EVP_MAC_CTX_new")(mac)
    name = ffi.new("unsigned char[16]")
    iv = ffi.new("unsigned char[16]")
    result = {}
    try:
        for label, enc in (("encrypt", 1), ("decrypt", 0)):
            start = time.perf_counter()
            for _ in range(iterations):
                if call(ffi.NULL, name, iv, cctx, hctx, enc) < 1:
                    raise RuntimeError(f"ticket callback failed ({label})")
            result[label] = (time.perf_counter() - start) / iterations * 1e6
    finally:
        fn("EVP_MAC_CTX_free")(hctx)
        fn("EVP_MAC_free")(mac)
        fn("EVP_CIPHER_CTX_free")(cctx)
    return result


def ticket_callback(iterations: int) -> dict[str, float]:
    from twisted.internet.task import Clock

    from resumetls import KeyRing, ResumingContextFactory, RotationPolicy

    clock = Clock()
    factory = ResumingContextFactory(
        _options(), key_ring=KeyRing.generate(clock, RotationPolicy()), clock=clock
    )
    # The object OpenSSL's callbacks call (the factory itself before the
    # server split gave it a hooks object).
    return measure_ticket_callback(getattr(factory, "hooks", factory), iterations)


def cache(iterations: int) -> dict[str, float]:
    from twisted.internet.task import Clock

    from resumetls import MemorySessionCache

    c = MemorySessionCache(max_entries=iterations * 2, clock=Clock())
    der = os.urandom(150)
    keys = [os.urandom(48) for _ in range(iterations)]
    start = time.perf_counter()
    for k in keys:
        c.store_now(k, der, 3600)
    store = (time.perf_counter() - start) / iterations * 1e6
    start = time.perf_counter()
    for k in keys:
        c.lookup_now(k)
    lookup = (time.perf_counter() - start) / iterations * 1e6
    return {"store": store, "lookup": lookup}


_STARTUP = """
import time
t = time.perf_counter()
import OpenSSL.SSL
t1 = time.perf_counter()
from resumetls.openssl.symbols import route
r = route()
t2 = time.perf_counter()
assert r.from_cache == {cached}, r.from_cache
print((t1 - t) * 1e3, (t2 - t1) * 1e3)
"""


def startup() -> dict[str, float]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = {}
    with tempfile.TemporaryDirectory() as cache_home:
        env = {**os.environ, "XDG_CACHE_HOME": cache_home, "PYTHONPATH": root}
        for label, cached in (("cold", False), ("warm", True)):
            out = subprocess.run(
                [sys.executable, "-c", _STARTUP.format(cached=cached)],
                env=env,
                capture_output=True,
                check=True,
                text=True,
            ).stdout.split()
            result[f"import pyOpenSSL, {label} run (ms)"] = float(out[0])
            result[f"OpenSSL route {label} (ms)"] = float(out[1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[float]] = {}
    for _ in range(args.runs):
        for prefix, values in (
            ("ticket callback", ticket_callback(args.iterations)),
            ("memory cache", cache(args.iterations)),
            ("start-up", startup()),
        ):
            for k, v in values.items():
                rows.setdefault(f"{prefix}: {k}", []).append(v)
    print(f"runs: {args.runs}, iterations per run: {args.iterations}\n")
    print("| what | median (µs unless marked) | min-max |")
    print("|---|---:|---:|")
    for name, values in rows.items():
        print(
            f"| {name} | {statistics.median(values):.1f} | "
            f"{min(values):.1f}-{max(values):.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
