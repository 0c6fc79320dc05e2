"""
The one option table and parser behind C{twist resumetls} and the
C{resumetls:} endpoint: field by field, every error message, the defaults
and bounds everything else takes from the table, endpoint string splitting
(as Twisted splits it), and L{build} turning a configuration into a context
factory and its key source.
"""

from __future__ import annotations

import os

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.internet.endpoints import _parse as twisted_parse
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from resumetls import (
    ConfigError,
    GeneratedKeySource,
    KeyFileSource,
    ResumptionSettings,
    RotationPolicy,
    TicketKey,
)
from resumetls.keys.files import write_haproxy_keys
from resumetls.options import SERVER_OPTIONS, split_description
from resumetls.server.config import (
    COMMAND_NAMES,
    ENDPOINT_NAMES,
    ServerConfig,
    build,
    parse,
    parse_endpoint,
)

from .. import support
from ..support import pem_files


class ParseTests(SynchronousTestCase):
    def error(self, options, names=ENDPOINT_NAMES, source=""):
        return str(self.assertRaises(ConfigError, parse, options, names, source))

    def test_defaults(self):
        """No options: the documented defaults."""
        config = parse({}, ENDPOINT_NAMES, "")
        self.assertEqual(config, ServerConfig())
        self.assertEqual(config.port, 8443)
        self.assertEqual(config.rotate_every, 12 * 3600)
        self.assertEqual(config.session_cache, "memory://")
        self.assertEqual((config.tickets, config.session_ids), (True, True))

    def test_every_endpoint_field(self):
        """Each endpoint option lands in its field, converted from text."""
        cert, key = pem_files(self)
        keys = os.path.abspath(self.mktemp())
        write_haproxy_keys(keys, [TicketKey.generate() for _ in range(3)])
        config = parse(
            {
                "port": "9443",
                "interface": "127.0.0.1",
                "backlog": "10",
                "handshakeTimeout": "2.5",
                "maxHandshakes": "7",
                "certKey": cert,
                "privateKey": key,
                "extraCertChain": cert,
                "ticketKeys": keys,
                "rotateEvery": "600",
                "keepKeys": "3",
                "tickets": "no",
                "sessionIds": "on",
                "sessionTimeout": "90.5",
                "tls13Tickets": "1",
                "sessionCache": "memory://?size=10",
                "service": "shop",
            },
            ENDPOINT_NAMES,
            "",
        )
        self.assertEqual(
            config,
            ServerConfig(
                port=9443,
                interface="127.0.0.1",
                backlog=10,
                handshake_timeout=2.5,
                max_handshakes=7,
                certificate=cert,
                key=key,
                extra_chain=cert,
                ticket_keys=(keys,),
                rotate_every=600.0,
                keep_keys=3,
                tickets=False,
                session_ids=True,
                session_timeout=90.5,
                tls13_tickets=1,
                session_cache="memory://?size=10",
                service="shop",
            ),
        )

    def test_command_names(self):
        """The command line's dashed names map to the same fields."""
        config = parse(
            {"session-timeout": "60", "tls13-tickets": "0", "keep-keys": "1"},
            COMMAND_NAMES,
            "--",
        )
        self.assertEqual(
            (config.session_timeout, config.tls13_tickets, config.keep_keys),
            (60.0, 0, 1),
        )
        # None means "not given" (usage.Options' default for no default).
        self.assertEqual(parse({"certificate": None}, COMMAND_NAMES, "--").key, None)

    def test_booleans(self):
        for text, value in [
            ("yes", True),
            ("TRUE", True),
            ("on", True),
            ("1", True),
            ("no", False),
            ("False", False),
            ("off", False),
            ("0", False),
        ]:
            self.assertEqual(
                parse({"tickets": text}, ENDPOINT_NAMES, "").tickets, value
            )
        self.assertEqual(
            self.error({"sessionIds": "maybe"}),
            "sessionIds must be yes or no, not 'maybe'",
        )

    def test_numbers(self):
        """Each number names its option, its bounds and the bad value."""
        cases = [
            ({"port": "x"}, "port must be a number, not 'x'"),
            ({"port": "-1"}, "port must be between 0 and 65535, not '-1'"),
            ({"port": "65536"}, "port must be between 0 and 65535, not '65536'"),
            ({"backlog": "0"}, "backlog must be between 1 and 65535, not '0'"),
            (
                {"sessionTimeout": "0.5"},
                "sessionTimeout must be between 1 and 604800, not '0.5'",
            ),
            (
                {"rotateEvery": "4"},
                "rotateEvery must be between 5 and 2.592e+06, not '4'",
            ),
            ({"keepKeys": "101"}, "keepKeys must be between 0 and 100, not '101'"),
            ({"tls13Tickets": "17"}, "tls13Tickets must be between 0 and 16, not '17'"),
            ({"tls13Tickets": "1.5"}, "tls13Tickets must be a number, not '1.5'"),
        ]
        for options, message in cases:
            self.assertEqual(self.error(options), message)
        self.assertEqual(
            self.error({"port": "x"}, COMMAND_NAMES, "--"),
            "--port must be a number, not 'x'",
        )

    def test_files(self):
        cert, key = pem_files(self)
        directory = os.path.dirname(cert)
        self.assertEqual(
            self.error({"certKey": "/no/such.pem", "privateKey": key}),
            "certKey: /no/such.pem: no such file",
        )
        self.assertEqual(
            self.error({"certKey": directory, "privateKey": key}),
            f"certKey: {directory}: not a file",
        )
        self.assertEqual(
            self.error({"ticketKeys": "/no/keys"}), "ticketKeys: /no/keys: no such file"
        )

    def test_unreadable_file(self):
        """A file this user cannot read (checked as a user who is not root)."""
        cert, key = pem_files(self)
        os.chmod(cert, 0)
        printed = support.run_unprivileged(
            "from resumetls import ConfigError\n"
            "from resumetls.server.config import ENDPOINT_NAMES, parse\n"
            "try:\n"
            f"    parse({{'certKey': {cert!r}, 'privateKey': {key!r}}}, ENDPOINT_NAMES, '')\n"
            "except ConfigError as e:\n"
            "    print(e)\n"
        )
        self.assertEqual(printed, f"certKey: {cert}: not readable\n")

    def test_key_without_certificate(self):
        """Like ssl:, a key file alone is read for the certificate too."""
        cert, key = pem_files(self)
        config = parse({"privateKey": key}, ENDPOINT_NAMES, "")
        self.assertEqual((config.certificate, config.key), (key, key))

    def test_certificate_without_key(self):
        cert, _ = pem_files(self)
        self.assertEqual(
            self.error({"certKey": cert}),
            "certKey was given without privateKey: give both, or neither for a "
            "development certificate",
        )
        self.assertEqual(
            self.error({"certificate": cert}, COMMAND_NAMES, "--"),
            "--certificate was given without --key: give both, or neither for a "
            "development certificate",
        )

    def test_unknown_option(self):
        message = self.error({"privatekey": "x"})
        self.assertTrue(message.startswith("unknown option privatekey; known: "))
        for name in ENDPOINT_NAMES:
            self.assertIn(name, message)

    def test_session_cache(self):
        """Unknown schemes are refused with the known ones listed."""
        message = self.error({"sessionCache": "zk://127.0.0.1"})
        self.assertTrue(
            message.startswith("unknown session cache 'zk://127.0.0.1'; known: "),
            message,
        )
        self.assertIn("memory://", message)
        self.assertIn("size", self.error({"sessionCache": "memory://?size=0"}))

    def test_parse_endpoint(self):
        """Positional port, name=value options, refused ssl: options."""
        self.assertEqual(parse_endpoint(("8443",), {}).port, 8443)
        self.assertEqual(parse_endpoint((), {"port": "8444"}).port, 8444)
        errors = [
            ((), {}, "resumetls: needs a port, e.g. resumetls:8443"),
            (
                ("8443", "extra"),
                {},
                "resumetls: takes one positional argument, the port; got '8443', "
                "'extra' (options are name=value; write a colon inside a value as \\:)",
            ),
            (("8443",), {"port": "1"}, "resumetls: the port was given twice"),
            (
                ("8443",),
                {"sslmethod": "TLSv1_2_METHOD"},
                "sslmethod is not supported: resumetls: negotiates the TLS "
                "versions Twisted allows by default; remove it",
            ),
            (
                ("8443",),
                {"dhParameters": "dh.pem"},
                "dhParameters is not supported: resumetls: uses ECDHE key "
                "exchange, which needs no parameter file; remove it",
            ),
        ]
        for args, kwargs, message in errors:
            e = self.assertRaises(ConfigError, parse_endpoint, args, kwargs)
            self.assertEqual(str(e), message)


class TableTests(SynchronousTestCase):
    """Defaults and bounds are written once, in the option table."""

    def test_names(self):
        """Endpoint keys as ssl: names them; flags as twist resumetls has them."""
        self.assertEqual(
            ENDPOINT_NAMES,
            {
                "port": "port",
                "interface": "interface",
                "backlog": "backlog",
                "handshakeTimeout": "handshake_timeout",
                "maxHandshakes": "max_handshakes",
                "certKey": "certificate",
                "privateKey": "key",
                "extraCertChain": "extra_chain",
                "ticketKeys": "ticket_keys",
                "rotateEvery": "rotate_every",
                "keepKeys": "keep_keys",
                "tickets": "tickets",
                "sessionIds": "session_ids",
                "sessionTimeout": "session_timeout",
                "tls13Tickets": "tls13_tickets",
                "sessionCache": "session_cache",
                "lookupBudget": "lookup_budget",
                "service": "service",
            },
        )
        self.assertEqual(
            list(COMMAND_NAMES),
            [
                "port",
                "interface",
                "backlog",
                "handshake-timeout",
                "max-handshakes",
                "certificate",
                "key",
                "extra-chain",
                "ticket-keys",
                "rotate-every",
                "keep-keys",
                "session-timeout",
                "tls13-tickets",
                "session-cache",
                "lookup-budget",
                "service",
                "no-tickets",
                "no-session-ids",
            ],
        )

    def test_defaults_from_the_table(self):
        """ServerConfig, ResumptionSettings and RotationPolicy take the table's."""
        config = ServerConfig()
        for field, row in SERVER_OPTIONS.rows.items():
            self.assertEqual(getattr(config, field), row.default, field)
        settings = ResumptionSettings()
        for field in (
            "tickets",
            "session_ids",
            "tls13_tickets",
            "session_timeout",
            "lookup_budget",
        ):
            self.assertEqual(getattr(settings, field), getattr(config, field))
        self.assertEqual(
            RotationPolicy(), RotationPolicy(config.rotate_every, config.keep_keys)
        )

    def test_usage_defaults(self):
        """twist resumetls shows the defaults as text, whole seconds unadorned."""
        shown = {row[0]: row[2] for row in SERVER_OPTIONS.usage_parameters()}
        self.assertEqual(
            shown,
            {
                "port": "8443",
                "interface": "",
                "backlog": "511",
                "handshake-timeout": "10",
                "max-handshakes": "1024",
                "certificate": None,
                "key": None,
                "extra-chain": None,
                "rotate-every": "43200",
                "keep-keys": "2",
                "session-timeout": "3600",
                "tls13-tickets": "2",
                "session-cache": "memory://",
                "lookup-budget": "0.05",
                "service": "",
            },
        )
        self.assertEqual(
            [row[0] for row in SERVER_OPTIONS.usage_flags()],
            ["no-tickets", "no-session-ids"],
        )

    def test_settings_use_the_table_bounds(self):
        """
        ResumptionSettings checks the bounds the parser checks: the limits
        are accepted, a value beyond them refused with its own message.
        """
        for timeout in (1, 604800):
            self.assertEqual(
                ResumptionSettings(session_timeout=timeout).session_timeout, timeout
            )
        for tickets in (0, 16):
            self.assertEqual(
                ResumptionSettings(tls13_tickets=tickets).tls13_tickets, tickets
            )
        for timeout in (0.5, 604801):
            e = self.assertRaises(
                ValueError, ResumptionSettings, session_timeout=timeout
            )
            self.assertEqual(
                str(e),
                "session timeout must be between 1 and 604800 seconds (7 days, the "
                f"TLS 1.3 limit), not {timeout!r}",
            )
        e = self.assertRaises(ValueError, ResumptionSettings, tls13_tickets=17)
        self.assertEqual(
            str(e), "TLS 1.3 ticket count must be between 0 and 16, not 17"
        )

    def test_switches(self):
        """--no-tickets and --no-session-ids turn their field off."""
        config = parse({"no-tickets": 1, "no-session-ids": 0}, COMMAND_NAMES, "--")
        self.assertEqual((config.tickets, config.session_ids), (False, True))

    def test_ticket_key_sources(self):
        """ticketKeys takes a key source specification: a path or file:PATH."""
        keys = os.path.abspath(self.mktemp())
        write_haproxy_keys(keys, [TicketKey.generate() for _ in range(3)])
        self.assertEqual(
            parse({"ticketKeys": f"file:{keys}"}, ENDPOINT_NAMES, "").ticket_keys,
            (f"file:{keys}",),
        )
        self.assertEqual(
            parse({"ticket-keys": [keys]}, COMMAND_NAMES, "--").ticket_keys, (keys,)
        )
        e = self.assertRaises(
            ConfigError, parse, {"ticketKeys": "zk://h/k"}, ENDPOINT_NAMES, ""
        )
        self.assertEqual(
            str(e),
            "ticketKeys: unknown ticket key source 'zk://h/k'; known: a key "
            "file's path, file:, redis:, redis+sentinel:, redis+unix:, rediss:",
        )
        e = self.assertRaises(
            ConfigError, parse, {"ticket-keys": "file:/no/k"}, COMMAND_NAMES, "--"
        )
        self.assertEqual(str(e), "--ticket-keys: /no/k: no such file")

    def test_config_error_is_public(self):
        import resumetls.options
        import resumetls.server.config

        self.assertIs(resumetls.options.ConfigError, ConfigError)
        self.assertIs(resumetls.server.config.ConfigError, ConfigError)
        self.assertTrue(issubclass(ConfigError, ValueError))


class ClientTableTests(SynchronousTestCase):
    """The resumetls: client endpoint's rows, and its errors: ConfigError too."""

    def test_defaults(self):
        from resumetls.options import CLIENT_OPTIONS

        self.assertEqual(CLIENT_OPTIONS.default("port"), 443)
        self.assertEqual(CLIENT_OPTIONS.default("timeout"), 30)
        self.assertEqual(
            CLIENT_OPTIONS.convert(
                {"port": "8443", "timeout": "2.5"},
                CLIENT_OPTIONS.endpoint_names(),
                "resumetls: ",
            ),
            {"port": 8443, "timeout": 2.5},
        )

    def test_config_errors(self):
        """The client endpoint raises the server endpoint's kind of error."""
        from twisted.internet.endpoints import clientFromString
        from twisted.internet.testing import MemoryReactorClock

        reactor = MemoryReactorClock()
        for description, message in [
            ("resumetls:host=a:port=0", "resumetls: port must be a number, not '0'"),
            (
                "resumetls:host=a:timeout=inf",
                "resumetls: timeout must be a number of seconds above 0, not 'inf'",
            ),
            ("resumetls:host=a:colour=blue", "resumetls: unknown client option colour"),
            ("resumetls:host=", "resumetls: client endpoints need host="),
            (
                "resumetls:a:443",
                "resumetls: client endpoints take host=… and port=…, not "
                "positional arguments ('a', '443')",
            ),
            (
                "resumetls:host=a:trustRoots=/no/ca.pem",
                "resumetls: cannot read trustRoots /no/ca.pem: No such file or "
                "directory",
            ),
        ]:
            e = self.assertRaises(ConfigError, clientFromString, reactor, description)
            self.assertEqual(str(e), message)


class SplitDescriptionTests(SynchronousTestCase):
    def test_examples(self):
        self.assertEqual(
            split_description(r"resumetls:8443:certKey=C\:\\x.pem:a\=b:service=x=y"),
            ("resumetls", ["8443", "a=b"], {"certKey": "C:\\x.pem", "service": "x=y"}),
        )
        self.assertEqual(split_description("tcp:80"), ("tcp", ["80"], {}))

    @given(
        st.lists(
            st.text(alphabet="ab=:\\1", min_size=0, max_size=6), min_size=1, max_size=5
        )
    )
    def test_like_twisted(self, parts):
        """The same split as serverFromString's own parser."""
        description = "resumetls:" + ":".join(parts)
        try:
            args, kwargs = twisted_parse(description)
        except RuntimeError:  # Twisted's tokenizer on a trailing backslash
            assume(False)
        prefix, ours_args, ours_kwargs = split_description(description)
        self.assertEqual([prefix, *ours_args], args)
        self.assertEqual(ours_kwargs, kwargs)


class BuildTests(SynchronousTestCase):
    def test_files_and_settings(self):
        """The factory serves the given certificate with the given settings."""
        cert, key = pem_files(self)
        config = parse(
            {
                "certKey": cert,
                "privateKey": key,
                "tickets": "no",
                "sessionTimeout": "120",
                "tls13Tickets": "3",
                "service": "api",
                "sessionCache": "memory://?size=5",
            },
            ENDPOINT_NAMES,
            "",
        )
        factory, source, _ = build(config, Clock())
        self.assertIsInstance(source, GeneratedKeySource)
        self.assertIs(source.key_ring, factory.key_ring)
        s = factory.settings
        self.assertEqual(
            (s.tickets, s.session_ids, s.session_timeout, s.tls13_tickets, s.service),
            (False, True, 120, 3, "api"),
        )
        self.assertEqual(factory.cache.stats().max_entries, 5)

    def test_ticket_keys(self):
        """A key file gives its keys to the ring and a source that watches it."""
        cert, key = pem_files(self)
        keyfile = os.path.abspath(self.mktemp())
        a, b, c = (TicketKey.generate() for _ in range(3))
        write_haproxy_keys(keyfile, [a, b, c])
        config = parse(
            {"certKey": cert, "privateKey": key, "ticketKeys": keyfile},
            ENDPOINT_NAMES,
            "",
        )
        clock = Clock()
        factory, source, _ = build(config, clock)
        self.assertIsInstance(source, KeyFileSource)
        self.assertEqual(source.path, keyfile)
        self.assertIs(source.key_ring, factory.key_ring)
        self.assertFalse(source.running)  # the endpoint starts it
        # HAProxy: the second-to-last key encrypts.
        self.assertEqual(factory.key_ring.encrypting_key().name, b.name)

    def test_generated_keys_rotate(self):
        """Without a key file, keys are generated and rotate on rotateEvery."""
        cert, key = pem_files(self)
        config = parse(
            {"certKey": cert, "privateKey": key, "rotateEvery": "600"},
            ENDPOINT_NAMES,
            "",
        )
        clock = Clock()
        factory, source, _ = build(config, clock)
        self.assertIsInstance(source, GeneratedKeySource)
        self.assertEqual(source.policy, RotationPolicy(interval=600, keep=2))
        first = factory.key_ring.encrypting_key().name
        clock.advance(599)
        self.assertEqual(factory.key_ring.encrypting_key().name, first)
        clock.advance(2)
        self.assertNotEqual(factory.key_ring.encrypting_key().name, first)

    def test_loose_key_file(self):
        cert, key = pem_files(self)
        keyfile = os.path.abspath(self.mktemp())
        write_haproxy_keys(keyfile, [TicketKey.generate() for _ in range(3)])
        os.chmod(keyfile, 0o640)
        config = parse(
            {"certKey": cert, "privateKey": key, "ticketKeys": keyfile},
            ENDPOINT_NAMES,
            "",
        )
        e = self.assertRaises(ConfigError, build, config, Clock())
        self.assertIn("chmod 600", str(e))
        self.assertIn(keyfile, str(e))

    def test_private_key_mode(self):
        """
        A TLS private key others may read or write is refused with the chmod
        that fixes it (it was accepted silently); its group may read it
        (Debian's ssl-cert convention), not write it.
        """
        cert, key = pem_files(self)
        config = parse({"certKey": cert, "privateKey": key}, ENDPOINT_NAMES, "")
        for mode, message in (
            (0o644, f"{key} is readable by others (mode 0644)"),
            (0o602, f"{key} is writable by others (mode 0602)"),
            (0o660, f"{key} is writable by its group (mode 0660)"),
        ):
            os.chmod(key, mode)
            e = self.assertRaises(ConfigError, build, config, Clock())
            fix = "g-w,o-rwx" if mode & 0o020 else "o-rwx"
            self.assertEqual(
                str(e),
                f"{message}; a TLS private key is a secret: run `chmod {fix} "
                f"{key}` (its group may read it, not others)",
            )
        for mode in (0o640, 0o600, 0o400):
            os.chmod(key, mode)
            factory, _, _ = build(config, Clock())
            self.assertIsNotNone(factory.getContext())
        # A file without a key says so, whatever its mode.
        os.chmod(cert, 0o644)
        e = self.assertRaises(
            ConfigError, build, parse({"privateKey": cert}, ENDPOINT_NAMES, ""), Clock()
        )
        self.assertEqual(str(e), f"{cert} does not hold an unencrypted PEM private key")

    def test_mismatched_key(self):
        cert, _ = pem_files(self)
        _, other = pem_files(self, "rsa")
        config = parse({"certKey": cert, "privateKey": other}, ENDPOINT_NAMES, "")
        e = self.assertRaises(ConfigError, build, config, Clock())
        self.assertEqual(
            str(e), f"the private key {other} does not match the certificate {cert}"
        )

    def test_not_a_certificate(self):
        _, key = pem_files(self)
        junk = os.path.abspath(self.mktemp())
        with open(junk, "w") as f:
            f.write("not a certificate\n")
        config = parse({"certKey": junk, "privateKey": key}, ENDPOINT_NAMES, "")
        e = self.assertRaises(ConfigError, build, config, Clock())
        self.assertEqual(str(e), f"{junk} does not hold a PEM certificate")

    def test_development_certificate(self):
        """Neither file: the development certificate from the data dir."""
        data = os.path.abspath(self.mktemp())
        self.patch(os, "environ", {**os.environ, "XDG_DATA_HOME": data})
        factory, _, _ = build(ServerConfig(), Clock())
        self.assertTrue(os.path.exists(os.path.join(data, "resumetls", "dev-cert.pem")))
        self.assertIsNotNone(factory.key_ring)

    def test_development_certificate_unwritable(self):
        """A data directory that cannot be written: one line saying what to do."""

        def fail(port=None):
            raise PermissionError(13, "Permission denied", "/ro/resumetls")

        import resumetls.cli.devcert

        self.patch(resumetls.cli.devcert, "development_certificate", fail)
        e = self.assertRaises(ConfigError, build, ServerConfig(), Clock())
        self.assertEqual(
            str(e),
            "cannot make a development certificate in /ro/resumetls (Permission "
            "denied); give a certificate and key, or set XDG_DATA_HOME to a "
            "writable directory",
        )
