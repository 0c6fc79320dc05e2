"""
The demo page in a real browser: headless Chromium (Debian's package), one
profile, two loads.  The first page refreshes itself once; the second load is
a new TLS connection and must say it was resumed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.trial.unittest import SkipTest, TestCase

from . import _support

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spki_hash(cert_path: str) -> str:
    """What --ignore-certificate-errors-spki-list wants: base64 SHA-256 of SPKI."""
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


class ChromiumTests(TestCase):
    timeout = 120

    def setUp(self):
        if CHROMIUM is None:
            raise SkipTest("chromium is not installed (.ci/run installs it)")

    def test_second_load_resumed(self):
        port = _support.free_port()
        proc = _support.start_process(
            self, ["-m", "twisted", "resumetls", "--port", str(port)], port
        )
        cert = os.path.join(proc.tmp, "data", "resumetls", "dev-cert.pem")
        profile = os.path.abspath(self.mktemp())
        out = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                # Trust exactly the development certificate: no certificate
                # error, so the browser treats the connection normally.
                f"--ignore-certificate-errors-spki-list={spki_hash(cert)}",
                "--virtual-time-budget=5000",
                "--dump-dom",
                # ?again=1 makes the page load / once more after a second.
                f"https://localhost:{port}/?again=1",
            ],
            capture_output=True,
            text=True,
            timeout=90,
        )
        dom = out.stdout
        self.assertIn('id="resumed">yes<', dom, dom[-2000:] + out.stderr[-2000:])
        self.assertIn("resumed (TLS 1.3 session ticket)", dom)
        _, body, _, _ = _support.https_get(port, "/status.json")
        server = json.loads(body)["server"]
        self.assertGreaterEqual(server["resumed_ticket_tls13"], 1)
