"""
The C{resumetls:} client endpoint string parser:
C{resumetls:host=example.com:port=443[:trustRoots=ca.pem][:sessions=FILE]}.

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

        from resumetls._client import ResumingClientCreator

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
        except ValueError:
            raise ValueError(
                f"resumetls: port must be a number, not {options['port']!r}"
            ) from None
        trust = options.get("trustRoots")
        sessions = options.get("sessions")
        key = (host, port, trust, sessions)
        creator = _creators.get(key)
        if creator is None:
            trust_root = None
            if trust:
                from twisted.internet.ssl import Certificate

                with open(trust, "rb") as f:
                    trust_root = Certificate.loadPEM(f.read())
            store = None
            if sessions:
                from resumetls._clientstore import FileClientSessionStore

                store = FileClientSessionStore(sessions)
            creator = ResumingClientCreator(host, trust_root, port=port, store=store)
            _creators[key] = creator
        endpoint = HostnameEndpoint(
            reactor, host, port, timeout=float(options.get("timeout", 30))
        )
        return wrapClientTLS(creator, endpoint)
