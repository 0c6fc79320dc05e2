"""
The embedded default's certificate: a self-signed certificate for localhost,
made once per user and kept in the user's data directory, so a browser that
was told to accept it keeps accepting it across restarts.  For development
only, and the log says so.
"""

from __future__ import annotations

import datetime
import os

from twisted.logger import Logger

_log = Logger(namespace="resumetls")

VALID_DAYS = 90


def data_dir() -> str:
    """Where per-user files live: C{$XDG_DATA_HOME/resumetls}."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return os.path.join(base, "resumetls")


def spki_pin(cert_path: str) -> str:
    """
    The certificate's public key pin (base64 SHA-256 of its
    SubjectPublicKeyInfo), what Chromium's
    C{--ignore-certificate-errors-spki-list} takes to trust exactly it.
    """
    import base64
    import hashlib

    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def _still_valid(cert_path: str, key_path: str) -> bool:
    """
    Whether the files hold a certificate valid for at least another day and
    the private key that belongs to it (a damaged pair is made again).
    """
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from resumetls.privatefiles import is_private

    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = load_pem_private_key(f.read(), None)
    except (OSError, ValueError, TypeError):
        return False
    if key.public_key() != cert.public_key():
        return False
    if not is_private(os.stat(key_path).st_mode):
        return False  # someone loosened it: make a fresh, private one
    remaining = cert.not_valid_after_utc - datetime.datetime.now(datetime.timezone.utc)
    return remaining > datetime.timedelta(days=1)


def _make(cert_path: str, key_path: str) -> None:
    from cryptography import x509

    from resumetls.certificates import issue_certificate, write_pem_files

    cert, key = issue_certificate(
        "localhost",
        organization="resumetls development",
        dns_names=["localhost"],
        ip_addresses=["127.0.0.1", "::1"],
        extensions=[(x509.BasicConstraints(ca=False, path_length=None), True)],
        backdate=datetime.timedelta(minutes=5),
        valid_for=datetime.timedelta(days=VALID_DAYS),
    )
    os.makedirs(os.path.dirname(key_path), mode=0o700, exist_ok=True)
    write_pem_files(cert, key, cert_path, key_path)


def ensure_development_certificate() -> tuple[str, str, bool]:
    """
    Paths of the development certificate and key, made on first use (or
    when the old one is about to expire), and whether they were made now.
    Nothing is logged (L{development_certificate} is the server's way).
    """
    directory = data_dir()
    cert_path = os.path.join(directory, "dev-cert.pem")
    key_path = os.path.join(directory, "dev-key.pem")
    made = False
    os.makedirs(directory, mode=0o700, exist_ok=True)
    # Several processes starting at once must not write mismatched halves.
    with open(os.path.join(directory, "dev-cert.lock"), "a") as lock:
        try:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock, still correct alone
            pass
        if not _still_valid(cert_path, key_path):
            _make(cert_path, key_path)
            made = True
    return cert_path, key_path, made


def chromium_command(pin: str, port: int | None) -> str:
    """
    The command that starts Chromium trusting exactly the certificate whose
    SPKI pin is C{pin}, on the demo page at C{port} (C{PORT} when unknown).
    """
    where = str(port) if port else "PORT"
    return (
        f"chromium --ignore-certificate-errors-spki-list={pin} "
        f"https://localhost:{where}/"
    )


def _literal(text: str) -> str:
    """C{text} as it must appear in a log format string to render as itself."""
    return text.replace("{", "{{").replace("}", "}}")


def development_certificate(port: int | None = None) -> tuple[str, str]:
    """
    Paths of the development certificate and key (L{ensure_development_certificate}),
    with a warning that says what they are and gives the Chromium command
    that trusts exactly this certificate.

    The command is part of the event's format string itself, not only a
    field: C{twist} logs JSON when its output is not a terminal, and a
    person reading that line must be able to copy the command from it.

    @param port: the port the server listens on, for the command's URL.
    """
    cert_path, key_path, made = ensure_development_certificate()
    pin = spki_pin(cert_path)
    command = chromium_command(pin, port)
    _log.warn(
        "Serving a self-signed development certificate for localhost ({cert}, "
        "{state}); browsers will warn about it. It is for development only: "
        "give --certificate and --key for anything else. Browsers do not "
        "resume sessions on a connection whose certificate warning was "
        "clicked through: to see resumption in Chromium, start it so that it "
        "trusts this certificate only: " + _literal(command),
        cert=cert_path,
        state="made now" if made else "made earlier",
        pin=pin,
        chromium=command,
        event="resumetls.devcert",
    )
    return cert_path, key_path


def main(argv: list[str]) -> int:
    """
    C{resumetls devcert}: the development certificate's paths, its SPKI pin
    and the Chromium command that trusts exactly it (made first if there is
    none, as C{twist resumetls} would).
    """
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(
        prog="resumetls devcert",
        description="Show the development certificate twist resumetls serves "
        "without --certificate, and the Chromium command that trusts it.",
    )
    parser.add_argument(
        "--port", type=int, default=8443, help="the server's port (default 8443)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    try:
        cert_path, key_path, made = ensure_development_certificate()
    except OSError as e:
        sys.stderr.write(
            f"resumetls devcert: cannot make the development certificate in "
            f"{e.filename or data_dir()} ({e.strerror}); set XDG_DATA_HOME to a "
            "writable directory\n"
        )
        return 2
    from cryptography import x509

    with open(cert_path, "rb") as f:
        expires = x509.load_pem_x509_certificate(f.read()).not_valid_after_utc
    pin = spki_pin(cert_path)
    info = {
        "certificate": cert_path,
        "key": key_path,
        "made_now": made,
        "expires": expires.isoformat(),
        "spki_pin": pin,
        "chromium": chromium_command(pin, args.port),
    }
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    sys.stdout.write(
        f"certificate  {cert_path}{' (made now)' if made else ''}\n"
        f"key          {key_path}\n"
        f"expires      {expires:%Y-%m-%d %H:%M} UTC\n"
        f"SPKI pin     {pin}\n"
        "\nTo see resumption in Chromium, start it trusting this certificate "
        "only:\n\n"
        f"    {info['chromium']}\n"
    )
    return 0
