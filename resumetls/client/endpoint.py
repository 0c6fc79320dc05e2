"""
The C{resumetls:} client endpoint string parser:
C{resumetls:host=example.com:port=443[:trustRoots=ca.pem][:sessions=FILE]}.

C{trustRoots} names a PEM file of one or more CA certificates (a bundle): the
server is trusted if any of them issued its certificate.  Without it, the
platform's trust store is used.  Without C{sessions}, sessions are kept in
memory in the process-wide default store.

Creators are kept per (host, port, trust roots, session file) for the life of
the process, so connections made from the same string resume each other's
sessions.  Imports nothing heavy until used (plugin discovery imports it).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import IStreamClientEndpointStringParserWithReactor
from twisted.plugin import IPlugin
from zope.interface import implementer

_creators: dict[tuple, Any] = {}


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class ResumeTLSClientParser:
    prefix = "resumetls"

    def parseStreamClient(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        from resumetls.client.creator import ResumingClientCreator

        options = dict(kwargs)
        if args:
            raise ValueError(
                "resumetls: client endpoints take host=… and port=…, "
                f"not positional arguments {args!r}"
            )
        unknown = sorted(
            set(options)
            - {"host", "port", "trustRoots", "sessions", "timeout", "bindAddress"}
        )
        if unknown:
            raise ValueError(f"resumetls: unknown client option {unknown[0]}")
        host = options.get("host")
        if not host:
            raise ValueError("resumetls: client endpoints need host=")
        try:
            port = int(options.get("port", "443"))
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise ValueError(
                f"resumetls: port must be a number, not {options['port']!r}"
            ) from None
        trust = options.get("trustRoots")
        sessions = options.get("sessions")
        key = (host, port, trust, sessions)
        creator = _creators.get(key)
        if creator is None:
            trust_root = _load_trust_roots(trust) if trust else None
            store = None
            if sessions:
                from resumetls.client.stores import FileClientSessionStore

                store = FileClientSessionStore(sessions)
            creator = ResumingClientCreator(host, trust_root, port=port, store=store)
            _creators[key] = creator
        try:
            timeout = float(options.get("timeout", "30"))
            if not 0 < timeout < float("inf"):
                raise ValueError
        except ValueError:
            raise ValueError(
                "resumetls: timeout must be a number of seconds above 0, "
                f"not {options['timeout']!r}"
            ) from None
        bind = options.get("bindAddress")
        endpoint = HostnameEndpoint(
            reactor,
            host,
            port,
            timeout=timeout,
            bindAddress=(bind, 0) if bind else None,
        )
        return wrapClientTLS(creator, endpoint)


def _load_trust_roots(path: str) -> Any:
    """
    Every certificate of the PEM file C{path}, as a trust root.

    @raise ValueError: when the file cannot be read or holds no certificate;
        the message names the file.
    """
    from cryptography import x509
    from OpenSSL.crypto import X509
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ValueError(
            f"resumetls: cannot read trustRoots {path}: {e.strerror}"
        ) from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ValueError(
            f"resumetls: trustRoots {path} holds no PEM certificate"
        ) from None
    return trustRootFromCertificates(
        [Certificate(X509.from_cryptography(c)) for c in certificates]
    )
