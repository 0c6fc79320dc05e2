"""
Services that require client certificates: the session ID context covers the
client CAs a service accepts, so a session made with a certificate that
service A accepted never resumes on service B, which would refuse that
certificate in a full handshake (resumption skips verification), even with
the same certificate, service name, ticket keys and cache.
"""

from __future__ import annotations

import json
import os
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL, crypto
from twisted.internet import reactor
from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import (
    Certificate,
    CertificateOptions,
    platformTrust,
    trustRootFromCertificates,
)
from twisted.internet.threads import deferToThread
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from resumetls import (
    KeyRing,
    MemorySessionCache,
    ResumingContextFactory,
    ResumptionSettings,
    TicketKey,
)

from .. import support
from ..support import CLIENT_TIMEOUT, listen

_CAS: dict[str, tuple] = {}


def authority(name: str) -> tuple:
    """A CA certificate and key, one per name for the whole run."""
    if name not in _CAS:
        usage = x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        )
        key = ec.generate_private_key(ec.SECP256R1())
        # The key identifier the client certificates' AKI points at.
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        _CAS[name] = support.issue(
            name, key=key, ca=True, extensions=[(usage, True), (ski, False)]
        )
    return _CAS[name]


def client_certificate(ca_name: str) -> tuple:
    """A client certificate issued by the CA C{ca_name}, and its key."""
    ca_cert, ca_key = authority(ca_name)
    return support.issue(
        f"client of {ca_name}",
        issuer=(ca_cert, ca_key),
        extensions=[
            (
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                False,
            ),
            (x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), False),
        ],
    )


def trust(*ca_names: str):
    """C{trustRootFromCertificates} of freshly loaded CA certificates."""
    return trustRootFromCertificates(
        [
            Certificate.loadPEM(
                authority(n)[0].public_bytes(serialization.Encoding.PEM)
            )
            for n in ca_names
        ]
    )


def requiring(*ca_names: str) -> CertificateOptions:
    """Server options (the test certificate) requiring a client certificate."""
    return support.options(trustRoot=trust(*ca_names))


def client_context(tmp: str, version, no_ticket: bool, ca_name: str):
    """A Python C{ssl} client context presenting a certificate from C{ca_name}."""
    os.makedirs(tmp)
    cafile, _ = support.write_pem(os.path.join(tmp, "server"), *support.certificate())
    certfile, keyfile = support.write_pem(
        os.path.join(tmp, "client"), *client_certificate(ca_name)
    )
    ctx = support.python_context(version, no_ticket, cafile)
    ctx.load_cert_chain(certfile, keyfile)
    return ctx


def _connect(port: int, ctx, session):
    """
    One connection; a refused client certificate is an outcome, not an
    error (TLS 1.2 fails the handshake, TLS 1.3 reports the alert on the
    first read).
    """
    result = {"reused": None, "session": None, "server": None, "error": None}
    with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as raw:
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost", session=session)
        except (ssl.SSLError, OSError) as e:
            result["error"] = str(e)
            return result
        result["reused"] = s.session_reused
        line = bytearray()
        try:
            support.read_line(s, line)
            while s.recv(4096):  # to close_notify: TLS 1.3 tickets are in
                pass
        except (ssl.SSLError, OSError) as e:
            result["error"] = str(e)
        result["session"] = s.session
        if line.strip():
            result["server"] = json.loads(line)
        s.close()
    return result


def connect(port: int, ctx, session=None):
    return deferToThread(_connect, port, ctx, session)


# name: (settings, Python ssl version, client refuses tickets, mechanism)
MODES = {
    "tls12-ticket": (
        ResumptionSettings(session_ids=False, service="api"),
        ssl.TLSVersion.TLSv1_2,
        False,
        "ticket_tls12",
    ),
    "tls12-session-id": (
        ResumptionSettings(tickets=False, service="api"),
        ssl.TLSVersion.TLSv1_2,
        True,
        "session_id",
    ),
    "tls13-ticket": (
        ResumptionSettings(session_ids=False, service="api"),
        ssl.TLSVersion.TLSv1_3,
        False,
        "ticket_tls13",
    ),
    "tls13-stateful": (
        ResumptionSettings(tickets=False, service="api"),
        ssl.TLSVersion.TLSv1_3,
        False,
        "session_id",
    ),
}


class _EveryMode:
    """The four modes of L{MODES}, each a test running C{self._mode(name)}."""

    def test_tls12_ticket(self):
        return ensureDeferred(self._mode("tls12-ticket"))

    def test_tls12_session_id(self):
        return ensureDeferred(self._mode("tls12-session-id"))

    def test_tls13_ticket(self):
        return ensureDeferred(self._mode("tls13-ticket"))

    def test_tls13_stateful(self):
        return ensureDeferred(self._mode("tls13-stateful"))


class ClientCATests(_EveryMode, TestCase):
    """
    Two services, same certificate, same service name, one key ring and one
    cache; A accepts client certificates from CA-A, B only from CA-B.
    """

    timeout = 60

    async def _mode(self, name):
        settings, version, no_ticket, mechanism = MODES[name]
        ring = KeyRing.from_keys(TicketKey.generate())
        cache = MemorySessionCache(clock=reactor)

        def service(*cas):
            return ResumingContextFactory(
                requiring(*cas), settings, key_ring=ring, cache=cache
            )

        a, b = service("CA-A"), service("CA-B")
        # Another process of service A (its CA loaded again): the same
        # context, so it resumes A's sessions.
        a2 = service("CA-A")
        port_a, _ = await listen(self, a)
        port_b, app_b = await listen(self, b)
        port_a2, _ = await listen(self, a2)
        ctx = client_context(self.mktemp(), version, no_ticket, "CA-A")

        first = await connect(port_a, ctx)
        self.assertIsNone(first["error"], name)
        self.assertFalse(first["reused"])
        self.assertEqual(first["server"]["resumed"], False)
        session = first["session"]
        self.assertTrue(session.id or session.has_ticket, name)

        on_b = await connect(port_b, ctx, session)
        self.assertFalse(on_b["reused"], f"{name}: resumed on B")
        self.assertIn("unknown ca", on_b["error"] or "", f"{name}: B accepted it")
        self.assertIsNone(on_b["server"])
        self.assertEqual(app_b.infos, [])
        self.assertEqual(b.stats().resumed, 0)

        # The same certificate still resumes where it is accepted.
        on_a2 = await connect(port_a2, ctx, session)
        self.assertIsNone(on_a2["error"], name)
        self.assertTrue(on_a2["reused"], name)
        self.assertEqual(on_a2["server"]["mechanism"], mechanism)


def verifying(*ca_names: str, required: bool) -> CertificateOptions:
    """
    Server options (the test certificate) that ask for a client certificate
    from C{ca_names}, the older way (C{verify=True, caCerts=}): C{required}
    or optional.  Both are built the same way, so only the verify mode tells
    them apart.
    """
    return support.options(
        verify=True,
        caCerts=[crypto.X509.from_cryptography(authority(n)[0]) for n in ca_names],
        requireCertificate=required,
    )


class OptionalThenRequiredTests(_EveryMode, TestCase):
    """
    Two services with the same client CAs, service name, key ring and cache:
    O asks for a client certificate (optional), R requires one.  A session
    made on O without a certificate must never resume on R, which would
    refuse that client in a full handshake: the verify mode is part of the
    session ID context.
    """

    timeout = 60

    async def _mode(self, name):
        settings, version, no_ticket, mechanism = MODES[name]
        ring = KeyRing.from_keys(TicketKey.generate())
        cache = MemorySessionCache(clock=reactor)

        def service(required):
            return ResumingContextFactory(
                verifying("CA-A", required=required),
                settings,
                key_ring=ring,
                cache=cache,
            )

        o, r, o2 = service(False), service(True), service(False)
        self.assertNotEqual(o.session_id_context, r.session_id_context)
        port_o, _ = await listen(self, o)
        port_r, app_r = await listen(self, r)
        port_o2, _ = await listen(self, o2)
        tmp = os.path.abspath(self.mktemp())
        os.makedirs(tmp)
        cafile, _ = support.write_pem(tmp, *support.certificate())
        # A client with no certificate at all.
        ctx = support.python_context(version, no_ticket, cafile)

        first = await connect(port_o, ctx)
        self.assertIsNone(first["error"], name)
        self.assertEqual(first["server"]["resumed"], False)
        session = first["session"]
        self.assertTrue(session.id or session.has_ticket, name)

        on_r = await connect(port_r, ctx, session)
        self.assertFalse(on_r["reused"], f"{name}: resumed on R without a certificate")
        self.assertIsNone(on_r["server"], f"{name}: R served a client without one")
        # R refused the client as in a full handshake: TLS 1.3 says why,
        # TLS 1.2 has only the generic alert.
        refusal = (
            "certificate required"
            if version == ssl.TLSVersion.TLSv1_3
            else "alert handshake failure"
        )
        self.assertIn(refusal, on_r["error"] or "", (name, on_r))
        self.assertEqual(app_r.infos, [])
        self.assertEqual(r.stats().resumed, 0)

        # The session resumes where no certificate is needed: another
        # process of O.
        on_o2 = await connect(port_o2, ctx, session)
        self.assertIsNone(on_o2["error"], name)
        self.assertTrue(on_o2["reused"], name)
        self.assertEqual(on_o2["server"]["mechanism"], mechanism)
        self.assertEqual(o2.stats().resumed, 1)


@implementer(IOpenSSLTrustRoot)
class _OwnTrust:
    """A trust root that does not say which CAs it accepts."""

    def __init__(self, ca_name: str):
        self._inner = trust(ca_name)

    def _addCACertsToContext(self, context):  # noqa: N802 - Twisted's name
        self._inner._addCACertsToContext(context)


class _PlainFactory:
    """An C{IOpenSSLContextFactory} that is not a C{CertificateOptions}."""

    def __init__(self, verify: bool):
        cert, key = support.certificate()
        self.context = SSL.Context(SSL.TLS_METHOD)
        self.context.use_certificate(crypto.X509.from_cryptography(cert))
        self.context.use_privatekey(crypto.PKey.from_cryptography_key(key))
        if verify:
            trust("CA-A")._addCACertsToContext(self.context)
            self.context.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT)

    def getContext(self):
        return self.context


class SessionIDContextTests(SynchronousTestCase):
    """What goes into the session ID context about client verification."""

    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def sid(self, options, service=""):
        return ResumingContextFactory(
            options,
            ResumptionSettings(service=service),
            key_ring=KeyRing.from_keys(TicketKey.generate()),
            cache=MemorySessionCache(clock=reactor),
        ).session_id_context

    def random_warnings(self):
        return [
            e for e in self.events if e.get("event") == "resumetls.sid_context.random"
        ]

    def test_ca_sets(self):
        """
        Other CA sets give other contexts; the same set in another order, or
        loaded again, gives the same one.
        """
        ab = self.sid(requiring("CA-A", "CA-B"))
        self.assertEqual(ab, self.sid(requiring("CA-B", "CA-A")))
        self.assertEqual(ab, self.sid(requiring("CA-A", "CA-B")))
        others = [
            self.sid(requiring("CA-A")),
            self.sid(requiring("CA-B")),
            self.sid(requiring("CA-A", "CA-C")),
            self.sid(requiring("CA-A", "CA-B", "CA-C")),
            self.sid(support.options()),
        ]
        self.assertEqual(len({ab, *others}), 6)
        self.assertEqual(self.random_warnings(), [])

    def test_legacy_ca_certs(self):
        """C{caCerts=} with C{verify=True} counts like the same trust root."""
        legacy = verifying("CA-B", "CA-A", required=True)
        self.assertEqual(self.sid(legacy), self.sid(requiring("CA-A", "CA-B")))

    def test_platform_trust(self):
        """OpenSSL's default paths: stable, and not any CA set."""

        def platform():
            return support.options(trustRoot=platformTrust())

        self.assertEqual(self.sid(platform()), self.sid(platform()))
        self.assertNotEqual(self.sid(platform()), self.sid(requiring("CA-A")))
        self.assertEqual(self.random_warnings(), [])

    def test_unidentified_trust_root(self):
        """
        A trust root whose CAs cannot be seen: a random context per factory,
        and a warning that says so and why.
        """

        def opaque():
            return support.options(trustRoot=_OwnTrust("CA-A"))

        self.assertNotEqual(self.sid(opaque(), "x"), self.sid(opaque(), "x"))
        warnings = self.random_warnings()
        self.assertEqual(len(warnings), 2)
        self.assertEqual(warnings[0]["service"], "x")
        self.assertIn("_OwnTrust", warnings[0]["why"])
        text = warnings[0]["log_format"]
        self.assertIn("not be shared across processes", text)

    def test_plain_context_factory(self):
        """
        A plain context factory that verifies peers: random, with a warning;
        one that does not: stable.
        """
        self.assertNotEqual(
            self.sid(_PlainFactory(True)), self.sid(_PlainFactory(True))
        )
        self.assertEqual(len(self.random_warnings()), 2)
        self.assertIn("_PlainFactory", self.random_warnings()[0]["why"])
        self.assertEqual(self.sid(_PlainFactory(False)), self.sid(_PlainFactory(False)))
        self.assertEqual(len(self.random_warnings()), 2)
