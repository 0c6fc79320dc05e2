"""
Ticket key files: nginx's 48/80-byte binary keys and HAProxy's base64 lines,
read, written and detected; every error names the file (and line) and never
shows key material; key files others can read are refused.

The interoperability tests run the real servers (nginx, HAProxy; skipped when
not installed) with key files we wrote, take a TLS 1.2 ticket from them with
C{openssl s_client}, and open it by hand with the key we believe encrypted it:
the name, the HMAC-SHA256 and the AES-CBC layer must all match.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from resumetls import KeySet, TicketKey
from resumetls.certificates import certificate_pem, private_key_pem
from resumetls.keys.files import (
    KeyFileError,
    check_permissions,
    detect_format,
    encode_nginx_key,
    load_haproxy_keys,
    load_key_file,
    load_nginx_keys,
    write_haproxy_keys,
    write_nginx_key,
)
from tests.support import (
    CLIENT_TIMEOUT,
    OPENSSL,
    certificate,
    free_port,
    open_ticket,
    run_unprivileged,
    session_ticket,
    stop_process,
    wait_for_port,
    write_pem,
)

NGINX = shutil.which("nginx") or (
    "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
)
HAPROXY = shutil.which("haproxy") or (
    "/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None
)


def key128() -> TicketKey:
    return TicketKey(os.urandom(16), os.urandom(16), os.urandom(16))


class FilesMixin:
    def path(self, data: bytes | None = None, mode: int = 0o600) -> str:
        p = os.path.abspath(self.mktemp())
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
            os.chmod(p, mode)
        return p


class NginxFormatTests(FilesMixin, SynchronousTestCase):
    def test_80(self):
        """
        80 bytes: name, HMAC-32, AES-32.  nginx, ngx_ssl_session_ticket_keys()
        in src/event/ngx_event_openssl.c:
            key->size = 80;
            ngx_memcpy(key->name, buf, 16);
            ngx_memcpy(key->hmac_key, buf + 16, 32);
            ngx_memcpy(key->aes_key, buf + 48, 32);
        """
        raw = bytes(range(80))
        key = load_key_file(self.path(raw)).encrypting
        self.assertEqual(key.name, raw[:16])
        self.assertEqual(key.hmac_key, raw[16:48])
        self.assertEqual(key.aes_key, raw[48:80])
        self.assertEqual(encode_nginx_key(key), raw)

    def test_48(self):
        """
        48 bytes: name, AES-16, HMAC-16 (the same function:
        C{ngx_memcpy(key->aes_key, buf + 16, 16);
        ngx_memcpy(key->hmac_key, buf + 32, 16);}).
        """
        raw = bytes(range(48))
        key = load_key_file(self.path(raw)).encrypting
        self.assertEqual(key.name, raw[:16])
        self.assertEqual(key.aes_key, raw[16:32])
        self.assertEqual(key.hmac_key, raw[32:48])
        self.assertEqual(key.bits, 128)
        self.assertEqual(encode_nginx_key(key), raw)

    def test_round_trip(self):
        for key in (TicketKey.generate(), key128()):
            p = self.path()
            write_nginx_key(p, key)
            self.assertEqual(load_key_file(p), KeySet(key))
            self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)

    def test_unencodable(self):
        """A key with a 16-byte HMAC and 32-byte AES key has no nginx form."""
        key = TicketKey(os.urandom(16), os.urandom(16), os.urandom(32))
        e = self.assertRaises(ValueError, write_nginx_key, self.path(), key)
        self.assertIn("nginx keys are AES-128 with a 16-byte HMAC key", str(e))

    def test_several_files_first_encrypts(self):
        """The first file encrypts, the others decrypt only."""
        a, b, c = TicketKey.generate(), TicketKey.generate(), TicketKey.generate()
        paths = [self.path() for _ in range(3)]
        for p, k in zip(paths, (a, b, c), strict=True):
            write_nginx_key(p, k)
        self.assertEqual(load_nginx_keys(paths), KeySet(a, (b, c)))
        self.assertEqual(load_nginx_keys(paths[0]), KeySet(a))  # one path

    def test_same_key_twice(self):
        """A file listed twice counts once; two keys with one name are refused."""
        a = TicketKey.generate()
        pa, pb = self.path(), self.path()
        write_nginx_key(pa, a)
        self.assertEqual(load_nginx_keys([pa, pa]), KeySet(a))
        write_nginx_key(pb, TicketKey(a.name, os.urandom(32), os.urandom(32)))
        e = self.assertRaises(KeyFileError, load_nginx_keys, [pa, pb])
        self.assertEqual(
            str(e),
            f"{pa}, {pb}: two different keys share the name {a.fingerprint} "
            "(fingerprint); give every key its own random 16-byte name",
        )

    def test_wrong_size(self):
        data = os.urandom(57)
        p = self.path(data)
        e = self.assertRaises(KeyFileError, load_nginx_keys, [p])
        self.assertEqual(
            str(e),
            f"{p}: is 57 bytes; nginx ticket keys are 48 or 80 bytes (make one "
            "with `resumetls keys generate --format nginx -o FILE`)",
        )
        e = self.assertRaises(KeyFileError, load_key_file, p)
        self.assertIn(f"{p}: not a text file of base64 keys", str(e))
        self.assertIn("exactly 48 or 80 bytes, this one is 57", str(e))

    def test_no_paths(self):
        e = self.assertRaises(KeyFileError, load_nginx_keys, [])
        self.assertEqual(str(e), "no ticket key files given")


class HAProxyFormatTests(FilesMixin, SynchronousTestCase):
    def test_roles_and_fields(self):
        """
        The second-to-last line encrypts, the last is next (pending), the
        third-to-last decrypts; earlier lines are ignored.  Fields are name,
        AES, HMAC (include/haproxy/ssl_sock-t.h, struct tls_sess_key_256).
        """
        raws = [os.urandom(80) for _ in range(4)]
        p = self.path(b"\n".join(base64.b64encode(k) for k in raws) + b"\n")
        ks = load_haproxy_keys(p)
        self.assertEqual(ks.encrypting.name, raws[2][:16])
        self.assertEqual(ks.encrypting.aes_key, raws[2][16:48])
        self.assertEqual(ks.encrypting.hmac_key, raws[2][48:80])
        self.assertEqual([k.name for k in ks.pending], [raws[3][:16]])
        self.assertEqual([k.name for k in ks.decrypt_only], [raws[1][:16]])
        self.assertNotIn(raws[0][:16], [k.name for k in ks.all])

    def test_48_crlf_no_final_newline(self):
        raws = [os.urandom(48) for _ in range(3)]
        p = self.path(b"\r\n".join(base64.b64encode(k) for k in raws))
        ks = load_key_file(p)
        self.assertEqual(ks.encrypting.name, raws[1][:16])
        self.assertEqual(ks.encrypting.aes_key, raws[1][16:32])
        self.assertEqual(ks.encrypting.hmac_key, raws[1][32:48])

    def test_round_trip(self):
        for make in (TicketKey.generate, key128):
            keys = [make() for _ in range(3)]
            p = self.path()
            write_haproxy_keys(p, keys)
            self.assertEqual(load_key_file(p), KeySet(keys[1], (keys[0],), (keys[2],)))
            self.assertEqual(os.stat(p).st_mode & 0o777, 0o600)
            with open(p, "rb") as f:
                lines = f.read().splitlines()
            self.assertEqual(
                base64.b64decode(lines[0]),
                keys[0].name + keys[0].aes_key + keys[0].hmac_key,
            )

    def test_identical_lines(self):
        """HAProxy accepts a key repeated; it counts once, in its busiest role."""
        a, b = TicketKey.generate(), TicketKey.generate()
        p = self.path()
        write_haproxy_keys(p, [a, a, b])
        self.assertEqual(load_key_file(p), KeySet(a, (), (b,)))

    def test_writer_refuses_unloadable_files(self):
        p = self.path()
        e = self.assertRaises(
            ValueError, write_haproxy_keys, p, [TicketKey.generate()] * 2
        )
        self.assertIn("at least 3 keys, not 2", str(e))
        e = self.assertRaises(
            ValueError,
            write_haproxy_keys,
            p,
            [TicketKey.generate(), key128(), TicketKey.generate()],
        )
        self.assertIn("must all be the same size", str(e))
        self.assertFalse(os.path.exists(p))
        self.assertEqual(
            [n for n in os.listdir(os.path.dirname(p)) if "resumetls" in n], []
        )

    def test_errors(self):
        """Each error names the file and line and never shows the keys."""
        good = base64.b64encode(os.urandom(80))
        small = base64.b64encode(os.urandom(48))
        cases = [
            (good + b"\nnot base64!!\n" + good, "line 2: not valid base64"),
            (
                good + b"\n" + base64.b64encode(os.urandom(50)) + b"\n" + good,
                "line 2: the key is 50 bytes; HAProxy keys are 48 or 80 bytes",
            ),
            (
                good + b"\n" + small + b"\n" + good,
                "line 2: a 48-byte key among 80-byte keys; HAProxy does not mix "
                "key sizes in one file",
            ),
            (
                good + b"\n" + good,
                "has 2 key(s); HAProxy ticket key files need at least 3 (generate "
                "one with `resumetls keys generate --format haproxy -o ",
            ),
            (
                good + b"\n\n" + good + b"\n" + good,
                "line 2: empty line (HAProxy reads one base64 key per line and "
                "refuses empty lines: remove it)",
            ),
            (
                good + b"\n" + good + b"\n" + good + b"\n\n",
                "line 4: empty line",
            ),
            (
                b"# ticket keys\n" + good + b"\n" + good + b"\n" + good,
                "line 1: a comment; HAProxy key files have no comments",
            ),
            (b"\xff\xfe binary junk" * 7, "not a text file of base64 keys"),
        ]
        for data, message in cases:
            p = self.path(data)
            e = self.assertRaises(KeyFileError, load_key_file, p)
            self.assertTrue(str(e).startswith(p), str(e))
            self.assertIn(message, str(e))
            for secret in (good, small, good[:20], base64.b64decode(good)[16:].hex()):
                self.assertNotIn(
                    secret.decode() if isinstance(secret, bytes) else secret, str(e)
                )


class DetectionTests(FilesMixin, SynchronousTestCase):
    def test_detect(self):
        self.assertEqual(detect_format(os.urandom(48)), "nginx")
        self.assertEqual(detect_format(os.urandom(80)), "nginx")
        self.assertEqual(detect_format(os.urandom(81)), "haproxy")
        p = self.path()
        write_haproxy_keys(p, [key128() for _ in range(3)])
        with open(p, "rb") as f:
            self.assertEqual(detect_format(f.read()), "haproxy")
        self.assertEqual(os.path.getsize(p), 3 * 65)  # never 48 or 80


class FileAccessTests(FilesMixin, SynchronousTestCase):
    def test_empty_missing_directory(self):
        p = self.path(b"")
        self.assertEqual(
            str(self.assertRaises(KeyFileError, load_key_file, p)),
            f"{p}: the ticket key file is empty",
        )
        missing = self.path()
        self.assertEqual(
            str(self.assertRaises(KeyFileError, load_key_file, missing)),
            f"{missing}: no such ticket key file",
        )
        d = self.path()
        os.mkdir(d, 0o700)
        self.assertEqual(
            str(self.assertRaises(KeyFileError, load_key_file, d)),
            f"{d}: is a directory, not a ticket key file",
        )

    def test_fifo(self):
        """A FIFO in the key file's place is refused at once, not waited on."""
        p = self.path()
        os.mkfifo(p, 0o600)
        e = self.assertRaises(KeyFileError, load_key_file, p)
        self.assertEqual(str(e), f"{p}: is not a regular file, not a ticket key file")

    def test_too_large(self):
        p = self.path(b"A" * (1 << 17))
        e = self.assertRaises(KeyFileError, load_key_file, p)
        self.assertIn("too large to be a ticket key file", str(e))

    def test_permissions_refused(self):
        for mode in (0o644, 0o640, 0o604, 0o660, 0o666):
            p = self.path(os.urandom(80), mode)
            for load in (load_key_file, load_nginx_keys, check_permissions):
                e = self.assertRaises(KeyFileError, load, p)
                self.assertEqual(
                    str(e),
                    f"{p} is readable by group or others (mode {mode:04o}); "
                    f"ticket keys are secrets: run `chmod 600 {p}`",
                )
        p = self.path(os.urandom(80), 0o620)
        e = self.assertRaises(KeyFileError, load_key_file, p)
        self.assertIn("is writable by group or others (mode 0620)", str(e))
        keys = [TicketKey.generate() for _ in range(3)]
        p = self.path()
        write_haproxy_keys(p, keys)
        os.chmod(p, 0o640)
        e = self.assertRaises(KeyFileError, load_haproxy_keys, p)
        self.assertIn("chmod 600", str(e))

    def test_permission_check_opt_out(self):
        """Only an explicit check_mode=False skips the check; 0400 is fine."""
        p = self.path(os.urandom(80), 0o644)
        load_key_file(p, check_mode=False)
        load_nginx_keys([p], check_mode=False)
        os.chmod(p, 0o400)
        load_key_file(p)

    def test_unreadable(self):
        """A key file this user cannot read (checked as a user who is not root)."""
        p = self.path(os.urandom(80), 0o000)
        printed = run_unprivileged(
            "from resumetls.keys.files import KeyFileError, load_key_file\n"
            "try:\n"
            f"    load_key_file({p!r})\n"
            "except KeyFileError as e:\n"
            "    print(e)\n"
        )
        self.assertIn(p, printed)
        self.assertIn("permission denied", printed)

    def test_atomic_replace(self):
        """Writing over a key file replaces it whole, leaving no temporary file."""
        p = self.path()
        write_nginx_key(p, TicketKey.generate())
        inode = os.stat(p).st_ino
        key = TicketKey.generate()
        write_nginx_key(p, key)
        self.assertNotEqual(os.stat(p).st_ino, inode)
        self.assertEqual(load_key_file(p).encrypting, key)
        self.assertEqual(os.listdir(os.path.dirname(p)), [os.path.basename(p)])


# -- the real servers ----------------------------------------------------------


class RealServerTests(SynchronousTestCase):
    """Tickets from nginx and HAProxy open with the keys we say they use."""

    def setUp(self):
        if OPENSSL is None:
            raise SkipTest("needs the openssl command")
        self.tmp = os.path.abspath(self.mktemp())
        os.makedirs(self.tmp)
        cert, key = certificate()
        self.cert_path, self.key_path = write_pem(self.tmp, cert, key)
        self.combined = os.path.join(self.tmp, "combined.pem")
        with open(self.combined, "wb") as f:
            f.write(certificate_pem(cert) + private_key_pem(key))

    def start(self, argv: list[str], port: int) -> None:
        log = open(os.path.join(self.tmp, "server.log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )

        def stop() -> None:
            stop_process(proc)
            log.close()

        self.addCleanup(stop)
        try:
            wait_for_port(port, proc)
        except AssertionError:
            with open(os.path.join(self.tmp, "server.log"), errors="replace") as f:
                raise AssertionError(f"server did not start:\n{f.read()}") from None

    def ticket_from(self, port: int) -> bytes:
        sess = os.path.join(self.tmp, f"sess-{port}.pem")
        subprocess.run(
            [
                OPENSSL,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                "localhost",
                "-tls1_2",
                "-sess_out",
                sess,
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=CLIENT_TIMEOUT,
        )
        ticket = session_ticket(sess)
        self.assertIsNotNone(ticket, "the server issued no ticket")
        return ticket

    def assert_opens(self, ticket: bytes, key: TicketKey) -> None:
        self.assertEqual(ticket[:16], key.name)
        state = open_ticket(ticket, key)
        # DER SSL_SESSION: SEQUENCE { INTEGER 1, INTEGER 0x0303 (TLS 1.2), ...
        self.assertEqual(state[0], 0x30)
        self.assertIn(b"\x02\x01\x01\x02\x02\x03\x03", state[:12])

    # nginx ----------------------------------------------------------------------

    def nginx(self, key_paths: list[str]) -> int:
        if NGINX is None:
            raise SkipTest("nginx is not installed (apt-get install nginx)")
        port = free_port()
        conf = os.path.join(self.tmp, "nginx.conf")
        keys = "\n".join(f"        ssl_session_ticket_key {p};" for p in key_paths)
        with open(conf, "w") as f:
            f.write(
                f"""
daemon off;
master_process off;
worker_processes 1;
pid {self.tmp}/nginx.pid;
error_log {self.tmp}/nginx-error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {self.tmp}/body;
    proxy_temp_path {self.tmp}/proxy;
    fastcgi_temp_path {self.tmp}/fastcgi;
    uwsgi_temp_path {self.tmp}/uwsgi;
    scgi_temp_path {self.tmp}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {self.cert_path};
        ssl_certificate_key {self.key_path};
        ssl_session_tickets on;
{keys}
    }}
}}
"""
            )
        self.start(
            [NGINX, "-p", self.tmp, "-e", f"{self.tmp}/nginx-error.log", "-c", conf],
            port,
        )
        return port

    def test_nginx_80_byte_key(self):
        """
        nginx reads our 80-byte file as we do: its tickets carry our name,
        verify with our HMAC key and decrypt (AES-256-CBC) with our AES key.
        """
        key = TicketKey.generate()
        p = os.path.join(self.tmp, "ticket.key")
        write_nginx_key(p, key)
        self.assert_opens(self.ticket_from(self.nginx([p])), key)
        self.assertEqual(load_key_file(p).encrypting, key)

    def test_nginx_48_byte_key_and_order(self):
        """48-byte keys (AES-128); of several files the first encrypts."""
        first, second = key128(), key128()
        paths = [os.path.join(self.tmp, n) for n in ("a.key", "b.key")]
        write_nginx_key(paths[0], first)
        write_nginx_key(paths[1], second)
        ticket = self.ticket_from(self.nginx(paths))
        self.assert_opens(ticket, load_nginx_keys(paths).encrypting)
        self.assertEqual(load_nginx_keys(paths).encrypting, first)

    # HAProxy --------------------------------------------------------------------

    def haproxy(self, keys_path: str) -> int:
        if HAPROXY is None:
            raise SkipTest("HAProxy is not installed (apt-get install haproxy)")
        port = free_port()
        conf = os.path.join(self.tmp, "haproxy.cfg")
        with open(conf, "w") as f:
            f.write(
                f"""
global
    nbthread 1
defaults
    mode tcp
    timeout connect 5s
    timeout client 5s
    timeout server 5s
frontend tls
    bind 127.0.0.1:{port} ssl crt {self.combined} tls-ticket-keys {keys_path}
    default_backend nowhere
backend nowhere
    server closed 127.0.0.1:1
"""
            )
        self.start([HAPROXY, "-db", "-f", conf], port)
        return port

    def test_haproxy_second_to_last_encrypts(self):
        """
        HAProxy encrypts with the second-to-last line (fields name, AES,
        HMAC), as load_key_file says: here 4 lines, AES-256.
        """
        keys = [TicketKey.generate() for _ in range(4)]
        p = os.path.join(self.tmp, "ticket.keys")
        write_haproxy_keys(p, keys)
        ticket = self.ticket_from(self.haproxy(p))
        ours = load_key_file(p)
        self.assertEqual(ours.encrypting, keys[2])
        self.assert_opens(ticket, ours.encrypting)

    def test_haproxy_48_byte_keys(self):
        keys = [key128() for _ in range(3)]
        p = os.path.join(self.tmp, "ticket.keys")
        write_haproxy_keys(p, keys)
        ticket = self.ticket_from(self.haproxy(p))
        self.assert_opens(ticket, load_key_file(p).encrypting)
        self.assertEqual(load_key_file(p).encrypting, keys[1])
