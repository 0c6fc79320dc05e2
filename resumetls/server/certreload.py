"""
Certificate reload without a restart: the certificate, its private key and
chain files are read again on SIGHUP and when one of them changes (as ticket
key files are), and new connections get the new certificate while open ones
keep theirs.  A pair that cannot be used (a key of another certificate, a
half-written file, a key others may read) is refused with the reason, and
the certificate in use stays.

Sessions and tickets made under the old certificate get a full handshake
after a reload: the session ID context is derived from the certificate
(L{resumetls.server.sidcontext}), and OpenSSL does not resume a session of
another context.  See L{ResumingContextFactory.replace_certificate}.
"""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.logger import Logger

from resumetls.filewatch import FileWatch, WatchedFiles

__all__ = ["CertificateReloader"]

_log = Logger(namespace="resumetls")


class CertificateReloader(WatchedFiles):
    """
    Keep a L{ResumingContextFactory} serving what its PEM files hold.

    @param factory: the context factory whose certificate is replaced.
    @param certificate: the certificate file (a chain may follow the leaf).
    @param key: the private key file (may be the certificate file).
    @param chain: more chain certificates, or L{None}.
    @param clock: an C{IReactorTime} for the file poll.
    @param interval: seconds between checks of the files.

    @ivar reloads: certificates put in service since start-up.
    @ivar refusals: reloads refused (the certificate in use stayed).
    """

    def __init__(
        self,
        factory: Any,
        certificate: str,
        key: str,
        chain: str | None,
        clock: Any,
        interval: float = 2.0,
    ) -> None:
        self.factory = factory
        self.certificate = certificate
        self.key = key
        self.chain = chain
        self.reloads = 0
        self.refusals = 0
        paths = [p for p in dict.fromkeys((certificate, key, chain)) if p]
        self._watch = FileWatch(
            paths,
            self.reload,
            clock,
            interval,
            failed_event="resumetls.certificate.reload_refused",
        )

    def __repr__(self) -> str:
        return f"<CertificateReloader {self.certificate} reloads={self.reloads}>"

    def describe(self) -> str:
        """The certificate served, by fingerprint, and its file (for logs)."""
        return f"{_fingerprint(self.factory.options)} from {self.certificate}"

    def reload(self, why: str = "SIGHUP") -> bool:
        """
        Read the files now and serve new connections with them; on error
        keep the certificate in use and say why
        (C{resumetls.certificate.reload_refused}).

        @return: L{True} when a new certificate was put in service.
        """
        from resumetls.server.pem import certificate_options

        try:
            options = certificate_options(self.certificate, self.key, self.chain)
            if _fingerprint(options) == _fingerprint(self.factory.options):
                return False
            self.factory.replace_certificate(options)
        except ValueError as e:
            self.refusals += 1
            _log.error(
                "refused to reload the certificate ({why}): {reason}; the "
                "certificate in use stays",
                why=why,
                reason=str(e),
                path=self.certificate,
                event="resumetls.certificate.reload_refused",
            )
            return False
        self.reloads += 1
        _log.info(
            "reloaded the certificate from {path} ({why}): {fingerprint} now "
            "serves new connections; sessions made under the old certificate "
            "get a full handshake",
            path=self.certificate,
            why=why,
            fingerprint=_fingerprint(options),
            event="resumetls.certificate.reloaded",
        )
        return True


def _fingerprint(options: Any) -> str | None:
    """The SHA-256 of the certificates C{options} serve (leaf, then chain), short."""
    from resumetls import certificates

    parts = [getattr(options, "certificate", None)]
    parts += list(getattr(options, "extraCertChain", None) or [])
    ders = [certificates.certificate_der(c) for c in parts if c is not None]
    if not ders or None in ders:
        return None
    return hashlib.sha256(b"".join(ders)).hexdigest()[:16]
