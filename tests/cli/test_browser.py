"""
The demo page in a real browser: headless Chromium (Debian's package), one
profile, one browser process, two loads of the page a few seconds apart (as a
person reloading).  The second load is a new TLS connection and must say it
was resumed, and the server's counters must agree.

Chromium is driven over its DevTools protocol on a pipe
(C{--remote-debugging-pipe}: JSON messages, NUL-terminated, on file
descriptors 3 and 4), so no websocket client is needed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import select
import shutil
import subprocess
import time

from twisted.trial.unittest import SkipTest, TestCase

from resumetls.cli.devcert import spki_pin

from .. import support

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def spki_flag(log: str) -> str:
    """
    The Chromium flag the server's development certificate warning gives
    (the log is C{twist}'s JSON lines: render the event as a person sees it).
    """
    from twisted.logger import eventFromJSON, formatEvent

    for line in log.split("\x1e"):
        if '"resumetls.devcert"' in line:
            text = formatEvent(eventFromJSON(line.strip()))
            found = re.findall(
                r"--ignore-certificate-errors-spki-list=[A-Za-z0-9+/=]+", text
            )
            if found:
                return found[0]
    raise AssertionError(f"no Chromium flag in the log:\n{log[-3000:]}")


class DevTools:
    """A minimal DevTools protocol client over Chromium's debugging pipe."""

    def __init__(self, argv: list[str], timeout: float = 60.0) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes answers on fd 4.  Python's
        # own descriptors are not inheritable, so close_fds=False passes just
        # these two (pass_fds would close them again after the dup2).
        self.proc = subprocess.Popen(
            argv,
            close_fds=False,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: (os.dup2(to_chrome_r, 3), os.dup2(from_chrome_w, 4)),
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self.deadline = time.monotonic() + timeout

    def call(self, method: str, session: str | None = None, **params) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def _read(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_chrome], [], [], left)
            if ready:
                chunk = os.read(self._from_chrome, 65536)
                if not chunk:
                    raise AssertionError("Chromium closed its debugging pipe")
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def close(self) -> str:
        """Stop the browser; returns what it wrote on stderr (for failures)."""
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        for fd in (self._to_chrome, self._from_chrome):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        return err.decode(errors="replace")


def chromium_argv(profile: str, flag: str, *extra: str) -> list[str]:
    """Headless Chromium with its own profile, trusting what C{flag} says."""
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1100,1000",
        f"--user-data-dir={profile}",
        # Trust exactly the development certificate, as the server's log
        # tells the user: no certificate error, so the browser treats the
        # connection normally (and resumes).
        flag,
        *extra,
    ]


def png_size(data: bytes) -> tuple[int, int]:
    """A PNG's width and height (from its IHDR chunk)."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise AssertionError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


#: Where C{RESUMETLS_SCREENSHOT=1} makes the browser test save its screenshot
#: of the resumed page (docs/server.md shows it).
SCREENSHOT = os.path.join(support.ROOT, "docs", "demo-page.png")


class ChromiumTests(TestCase):
    timeout = 120

    def setUp(self):
        if CHROMIUM is None:
            raise SkipTest("chromium is not installed (.ci/run installs it)")
        self.port = support.free_port()
        proc = support.start_process(
            self, ["-m", "twisted", "resumetls", "--port", str(self.port)], self.port
        )
        cert = os.path.join(proc.tmp, "data", "resumetls", "dev-cert.pem")
        self.flag = spki_flag(support.read_output(proc))
        self.assertEqual(self.flag.split("=", 1)[1], spki_pin(cert))
        self.url = f"https://localhost:{self.port}/"

    def test_second_load_resumed(self):
        """
        Two loads a few seconds apart, in one browser, over HTTP/2: the
        first a full handshake, the second resumed by a TLS 1.3 ticket; the
        page says so in words, and its figures agree with status.json.
        """
        profile = os.path.abspath(self.mktemp())
        browser = DevTools(
            chromium_argv(profile, self.flag, "--remote-debugging-pipe", "about:blank")
        )
        stderr = ""
        try:
            targets = browser.call("Target.getTargets")["targetInfos"]
            page = next(t["targetId"] for t in targets if t["type"] == "page")
            session = browser.call(
                "Target.attachToTarget", targetId=page, flatten=True
            )["sessionId"]
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=1100,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            first = self.load(browser, session, self.url)
            # Like a person reloading: a little later, in the same browser.
            time.sleep(3)
            second = self.load(browser, session, self.url)
            shot = base64.b64decode(
                browser.call("Page.captureScreenshot", session, format="png")["data"]
            )
        finally:
            stderr = browser.close()
        self.assertEqual(first["resumed"], "no", stderr[-2000:])
        self.assertEqual(first["protocol"], "h2")
        self.assertEqual(
            first["headline"], "This connection made a full handshake", first
        )
        self.assertEqual(second["resumed"], "yes", f"{second}\n{stderr[-2000:]}")
        self.assertEqual(second["protocol"], "h2")
        self.assertEqual(
            second["headline"], "This connection was resumed (TLS 1.3 session ticket)"
        )
        text = second["text"]
        self.assertIn("Your browser presented a TLS 1.3 session ticket", text)
        self.assertIn("TLS 1.3 · TLS_AES_", text)
        self.assertIn("· HTTP/2", text)
        self.assertRegex(text, r"Resumed: \d+ of \d+ handshakes \(\d+%\)\.")
        for title in ("Handshakes", "Session tickets", "Session cache", "Ticket keys"):
            self.assertIn(title + "\n", text)
        # What a person reads has no raw counter names.
        self.assertNotRegex(text, r"\b[a-z]+_[a-z_]+\b")
        _, body, _, _ = support.https_get(self.port, "/status.json")
        server = json.loads(body)["server"]
        # The page counted its own connection; the browser may have resumed
        # others since (a favicon), never fewer.
        self.assertGreaterEqual(int(second["tls13"]), 1)
        self.assertGreaterEqual(server["resumed_ticket_tls13"], int(second["tls13"]))
        self.assertEqual(png_size(shot), (1100, 1000))
        if os.environ.get("RESUMETLS_SCREENSHOT"):
            with open(SCREENSHOT, "wb") as f:
                f.write(shot)

    def test_dump_dom(self):
        """
        C{chromium --dump-dom}, a new browser: the page of a first visit (a
        full handshake), its sections, and a plain-words verdict.
        """
        profile = os.path.abspath(self.mktemp())
        out = subprocess.run(
            chromium_argv(profile, self.flag, "--dump-dom", self.url),
            capture_output=True,
            text=True,
            timeout=90,
        )
        dom = out.stdout
        self.assertIn(
            '<p id="headline">This connection made a full handshake</p>',
            dom,
            out.stderr[-2000:],
        )
        self.assertIn('<span id="protocol">HTTP/2</span>', dom)
        for section in ("handshakes", "tickets", "cache", "keys", "problems"):
            self.assertIn(f'id="s-{section}"', dom)
        self.assertRegex(
            dom, r'<tr id="c-full_handshakes"><th>Full handshakes<small>'
        )

    def load(self, browser: DevTools, session: str, url: str) -> dict:
        """Navigate and wait (bounded) for the page's verdict."""
        browser.call("Page.navigate", session, url=url)
        # A document already read is marked, so the old page is never taken
        # for the new one while the navigation is under way.
        expression = (
            "!window.__read && document.readyState === 'complete' &&"
            " document.getElementById('verdict')"
            " ? (window.__read = true, JSON.stringify({"
            "resumed: document.getElementById('verdict').dataset.resumed,"
            " headline: document.getElementById('headline').textContent,"
            " text: document.body.innerText,"
            " tls13: document.querySelector('#c-resumed_ticket_tls13 td')"
            ".textContent,"
            " protocol: performance.getEntriesByType('navigation')[0]"
            ".nextHopProtocol}))"
            " : ''"
        )
        for _ in range(100):
            result = browser.call(
                "Runtime.evaluate", session, expression=expression, returnByValue=True
            )["result"]
            if result.get("value"):
                return json.loads(result["value"])
            time.sleep(0.1)
        raise AssertionError(f"{url} did not load")
