"""
The pluggable parts of resumetls, as zope interfaces.

Only interfaces live here, so that code implementing one (a Redis cache, a key
source that reads a shared volume) needs to import nothing heavy.
"""

from zope.interface import Attribute, Interface


class ISessionCache(Interface):
    """
    A server-side store of TLS sessions, keyed by session ID.

    Sessions cross this boundary as DER bytes (what C{i2d_SSL_SESSION} gives);
    they contain master secrets, so a cache outside the process must encrypt
    and authenticate them.  Expiry belongs to the cache: an entry must not be
    returned once its lifetime has passed.

    Every method returns a L{Deferred}.  An in-process cache returns one that
    has already fired, and the server uses the answer within the handshake; a
    networked cache may fire later.
    """

    def store(session_id, der, lifetime):
        """
        Remember a session.

        @param session_id: the key, at most 64 bytes (the server may prefix
            the TLS session ID with a per-service namespace).
        @type session_id: L{bytes}
        @param der: the serialized session.
        @type der: L{bytes}
        @param lifetime: seconds after which the entry must be forgotten.
        @type lifetime: L{float}

        @return: a L{Deferred} firing with L{None} once stored.  A store never
            fails because the cache is full: the least useful entry goes.
        """

    def lookup(session_id):
        """
        Find a session stored earlier.

        @param session_id: the key given to L{store}.
        @type session_id: L{bytes}

        @return: a L{Deferred} firing with the DER L{bytes}, or L{None} when
            there is no live entry.  Backend failures fire with L{None} too
            (and are counted): a lookup that fails means a full handshake.
        """

    def remove(session_id):
        """
        Forget a session, if present.

        @param session_id: the key given to L{store}.
        @type session_id: L{bytes}

        @return: a L{Deferred} firing with L{None}.
        """

    def stats():
        """
        Current figures of this cache.

        @return: a L{resumetls.CacheStats}: entries and bytes held now, and
            running counts of hits, misses, stores, evictions, expirations and
            backend errors.
        """


class ITicketKeys(Interface):
    """
    The session ticket keys a server encrypts and decrypts tickets with.

    A ticket key is a L{resumetls.TicketKey}: a 16-byte name sent in the clear
    in every ticket, an HMAC-SHA256 key and an AES-CBC key.  Exactly one key
    encrypts at any moment; older keys are kept for decryption only (tickets
    they open are renewed), and I{pending} keys are known before any server
    encrypts with them, so a fleet can learn a key ahead of its first use.
    """

    def encrypting_key():
        """
        The key new tickets are encrypted with now.

        @return: a L{resumetls.TicketKey}.
        """

    def decrypting_key(name):
        """
        Find the key a received ticket names.

        @param name: the 16-byte key name from the ticket.
        @type name: L{bytes}

        @return: L{None} when no key has that name (the ticket is rejected and
            the client gets a full handshake), else a 2-tuple of the
            L{resumetls.TicketKey} and a L{bool} that is L{True} when the
            ticket should be renewed under the current encrypting key.
        """

    def describe():
        """
        A summary that is safe to log or show: no key material.

        @return: a L{resumetls.KeyRingSummary}.
        """

    generation = Attribute(
        "An integer that grows whenever the set of keys changes (rotation, "
        "reload); lets observers notice changes cheaply."
    )


class IClientSessionStore(Interface):
    """
    Where a resuming client keeps its sessions, per server profile.

    Sessions cross this boundary as DER bytes; they contain master secrets, so
    a store that writes them anywhere must keep them private.  Keys name a
    server profile (host, port, SNI, verification and ALPN settings): a
    session is only ever offered to the profile that made it.
    """

    def put(key, der, expires, single_use):
        """
        Remember a session for C{key}.

        @param key: the server profile, a L{str}.
        @param der: the serialized session.
        @param expires: POSIX time after which the session is useless.
        @param single_use: L{True} for TLS 1.3 tickets (RFC 8446, C.4: use
            each once), L{False} for TLS 1.2 sessions, which may be offered
            again.
        """

    def take(key, now):
        """
        A session to offer for C{key}, or L{None}: the newest live one.
        Single-use sessions are removed by taking them; expired ones are
        dropped.

        @return: DER L{bytes} or L{None}.
        """

    def forget(key):
        """Drop every session of C{key}."""
