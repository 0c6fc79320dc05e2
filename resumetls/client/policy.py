"""
An HTTPS policy for C{twisted.web.client.Agent} (and treq) whose
connections resume.
"""

from __future__ import annotations

import collections
from typing import Any

from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from resumetls.client import creator as _creator


@implementer(IPolicyForHTTPS)
class ResumingPolicyForHTTPS:
    """
    An C{IPolicyForHTTPS} for C{twisted.web.client.Agent} (and treq) whose
    connections resume, like C{BrowserLikePolicyForHTTPS} otherwise.  It keeps
    one creator per (host, port): sessions belong to the context that made
    them.

    @param store: an L{IClientSessionStore}; default:
        L{resumetls.client.creator.default_store}, the one
        L{ResumingClientCreator} uses too.
    @param max_servers: how many (host, port) creators are kept, the least
        recently used dropped first.
    """

    def __init__(
        self, trustRoot: Any = None, store: Any = None, max_servers: int = 1000
    ):
        self._trustRoot = trustRoot
        self.store = store if store is not None else _creator.default_store
        self._creators: collections.OrderedDict = collections.OrderedDict()
        self._max = max_servers

    def creatorForNetloc(  # noqa: N802
        self, hostname: bytes, port: int
    ) -> _creator.ResumingClientCreator:
        key = (hostname, port)
        creator = self._creators.get(key)
        if creator is None:
            creator = _creator.ResumingClientCreator(
                hostname.decode("ascii"),
                self._trustRoot,
                port=port,
                store=self.store,
            )
            self._creators[key] = creator
            while len(self._creators) > self._max:
                self._creators.popitem(last=False)
        else:
            self._creators.move_to_end(key)
        return creator
