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
    """
    C{resumetls:host=…:port=…:…}; its options are the rows of
    L{resumetls.options.CLIENT_OPTIONS}.  Errors are L{resumetls.ConfigError}
    (a C{ValueError}), as the server endpoint's, with one-line messages.
    """

    prefix = "resumetls"

    def parseStreamClient(self, reactor: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
        from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS

        from resumetls.client.creator import ResumingClientCreator
        from resumetls.options import CLIENT_OPTIONS, ConfigError

        if args:
            raise ConfigError(
                "resumetls: client endpoints take host=… and port=…, "
                f"not positional arguments {args!r}"
            )
        given = CLIENT_OPTIONS.convert(
            kwargs, CLIENT_OPTIONS.endpoint_names(), "resumetls: "
        )
        options = {
            field: given.get(field, row.default)
            for field, row in CLIENT_OPTIONS.rows.items()
        }
        host, port = options["host"], options["port"]
        if not host:
            raise ConfigError("resumetls: client endpoints need host=")
        trust, sessions = options["trust_roots"], options["sessions"]
        key = (host, port, trust, sessions)
        creator = _creators.get(key)
        if creator is None:
            trust_root = _load_trust_roots(trust) if trust else None
            store = None
            if sessions:
                from resumetls.client.filestore import FileClientSessionStore

                store = FileClientSessionStore(sessions)
            creator = ResumingClientCreator(host, trust_root, port=port, store=store)
            _creators[key] = creator
        bind = options["bind_address"]
        endpoint = HostnameEndpoint(
            reactor,
            host,
            port,
            timeout=options["timeout"],
            bindAddress=(bind, 0) if bind else None,
        )
        return wrapClientTLS(creator, endpoint)


def _load_trust_roots(path: str) -> Any:
    """
    Every certificate of the PEM file C{path}, as a trust root.

    @raise ConfigError: when the file cannot be read or holds no
        certificate; the message names the file.
    """
    from cryptography import x509
    from OpenSSL.crypto import X509
    from twisted.internet.ssl import Certificate, trustRootFromCertificates

    from resumetls.options import ConfigError

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(
            f"resumetls: cannot read trustRoots {path}: {e.strerror}"
        ) from None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigError(
            f"resumetls: trustRoots {path} holds no PEM certificate"
        ) from None
    return trustRootFromCertificates(
        [Certificate(X509.from_cryptography(c)) for c in certificates]
    )
