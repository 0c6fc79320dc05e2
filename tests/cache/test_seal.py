"""
Sealed values: only the same key, namespace and session ID open them; bad
input is L{None}, never an exception; the key derivation is stable.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from resumetls.cache import seal
from resumetls.cache.seal import SealKeyError, SessionSealer, derive_key

KEY = bytes(range(32))
SID = b"\x01" * 32
DER = b"0\x82\x01\x00 master secret " + b"\xaa" * 48


class SealerTests(SynchronousTestCase):
    def setUp(self):
        self.sealer = SessionSealer(KEY, b"service-a")

    def test_round_trip(self):
        blob = self.sealer.seal(SID, DER)
        self.assertEqual(self.sealer.open(SID, blob), DER)
        self.assertEqual(len(blob), len(DER) + seal.OVERHEAD)
        self.assertEqual(blob[0], seal.VERSION)

    def test_no_plaintext_and_fresh_nonce(self):
        one, two = self.sealer.seal(SID, DER), self.sealer.seal(SID, DER)
        self.assertNotEqual(one, two)
        self.assertNotIn(b"master secret", one)
        self.assertNotIn(b"\xaa" * 8, one)

    def test_other_session_id(self):
        blob = self.sealer.seal(SID, DER)
        self.assertIsNone(self.sealer.open(b"\x02" * 32, blob))

    def test_other_namespace(self):
        blob = self.sealer.seal(SID, DER)
        self.assertIsNone(SessionSealer(KEY, b"service-b").open(SID, blob))
        # A namespace that is a prefix of the other, with the ID shifted,
        # does not collide either (the namespace's length is bound too).
        shifted = SessionSealer(KEY, b"service-").open(b"a" + SID, blob)
        self.assertIsNone(shifted)

    def test_other_key(self):
        blob = self.sealer.seal(SID, DER)
        self.assertIsNone(SessionSealer(bytes(32), b"service-a").open(SID, blob))

    def test_tampered(self):
        blob = bytearray(self.sealer.seal(SID, DER))
        for i in (0, 1, 13, len(blob) - 1):
            bad = bytearray(blob)
            bad[i] ^= 1
            self.assertIsNone(self.sealer.open(SID, bytes(bad)))

    def test_bad_input(self):
        for bad in (None, b"", b"\x01", b"\x01" * 28, "text", 7, [1], b"\x02" * 64):
            self.assertIsNone(self.sealer.open(SID, bad))
        self.assertIsNone(self.sealer.open(None, self.sealer.seal(SID, DER)))

    def test_bytearray_blob(self):
        blob = self.sealer.seal(SID, DER)
        self.assertEqual(self.sealer.open(SID, bytearray(blob)), DER)

    @given(st.binary(max_size=200))
    def test_garbage_never_raises(self, data):
        self.assertIsNone(self.sealer.open(SID, data))

    def test_repr_has_no_key(self):
        text = repr(self.sealer)
        self.assertNotIn(KEY.hex(), text)
        self.assertNotIn(repr(KEY), text)
        self.assertIn("AES-256-GCM", text)

    def test_bad_key(self):
        for bad in (b"short", "x" * 32, None, bytes(31), bytes(33)):
            self.assertRaises(SealKeyError, SessionSealer, bad, b"ns")
        self.assertRaises(ValueError, SessionSealer, KEY, "text")


class DeriveKeyTests(SynchronousTestCase):
    def setUp(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def test_stable_across_encodings(self):
        der8 = self.rsa.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        pem1 = self.rsa.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        key = derive_key(der8)
        self.assertEqual(len(key), 32)
        self.assertEqual(derive_key(pem1), key)
        self.assertEqual(derive_key(self.rsa), key)

    def test_documented_derivation(self):
        """The key is HKDF-SHA256(PKCS#8 DER, no salt, the documented info)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        der = self.rsa.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        expected = HKDF(
            hashes.SHA256(), 32, None, b"resumetls/seal/v1/sessions"
        ).derive(der)
        self.assertEqual(derive_key(der), expected)

    def test_purpose_and_key_separate(self):
        other = ec.generate_private_key(ec.SECP256R1())
        keys = {
            derive_key(self.rsa),
            derive_key(self.rsa, b"ticket-keys"),
            derive_key(other),
        }
        self.assertEqual(len(keys), 3)

    def test_bad_private_key(self):
        e = self.assertRaises(SealKeyError, derive_key, b"not a key")
        self.assertIn("not an unencrypted DER or PEM private key", str(e))
        self.assertRaises(SealKeyError, derive_key, 42)
        self.assertRaises(ValueError, derive_key, self.rsa, b"")


class KeyFileTests(SynchronousTestCase):
    def write(self, data, mode=0o600):
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
        return path

    def test_forms(self):
        import base64

        for data in (KEY, KEY.hex().encode() + b"\n", base64.b64encode(KEY)):
            self.assertEqual(seal.read_key_file(self.write(data)), KEY)

    def test_wrong_size(self):
        e = self.assertRaises(SealKeyError, seal.read_key_file, self.write(b"abc"))
        self.assertIn("must hold 32 bytes", str(e))
        self.assertIn("/dev/urandom", str(e))

    def test_readable_by_others(self):
        path = self.write(KEY, 0o644)
        e = self.assertRaises(SealKeyError, seal.read_key_file, path)
        self.assertIn("chmod 600", str(e))
        self.assertNotIn(KEY.hex(), str(e))

    def test_missing(self):
        path = self.mktemp()
        e = self.assertRaises(SealKeyError, seal.read_key_file, path)
        self.assertIn(path, str(e))


class CombinedPEMTests(SynchronousTestCase):
    def test_key_after_certificate(self):
        """A combined PEM file (certificate, then key) derives from the key."""
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        combined = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
        self.assertEqual(derive_key(combined + pem), derive_key(key))


class PrivateKeyFileTests(SynchronousTestCase):
    def test_file_and_purpose(self):
        """key_from_private_key_file derives from the file's key, by purpose."""
        key = ec.generate_private_key(ec.SECP256R1())
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
        self.assertEqual(seal.key_from_private_key_file(path), derive_key(key))
        self.assertEqual(
            seal.key_from_private_key_file(path, b"ticket-keys"),
            derive_key(key, b"ticket-keys"),
        )
        self.assertEqual(
            seal.sealing_key(path, None, b"ticket-keys"),
            derive_key(key, b"ticket-keys"),
        )

    def test_missing_and_not_a_key(self):
        path = self.mktemp()
        e = self.assertRaises(SealKeyError, seal.key_from_private_key_file, path)
        self.assertEqual(f"cannot read {path}: No such file or directory", str(e))
        with open(path, "wb") as f:
            f.write(b"not a key")
        e = self.assertRaises(SealKeyError, seal.key_from_private_key_file, path)
        self.assertIn("not an unencrypted DER or PEM private key", str(e))
