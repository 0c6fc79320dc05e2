"""
The pluggable parts of resumetls, as zope interfaces.

Only interfaces live here, so that code implementing one (a Redis cache, a key
source that reads a shared volume) needs to import nothing heavy.
"""

from zope.interface import Attribute, Interface


class ISessionCache(Interface):
    """
    A server-side store of TLS sessions, keyed by session ID: the contract
    every session cache provides, in-process or networked.

    Sessions cross this boundary as DER bytes (what C{i2d_SSL_SESSION} gives);
    they contain master secrets, so a cache outside the process must encrypt
    and authenticate them.  Expiry belongs to the cache: an entry must not be
    returned once its lifetime has passed.

    Every method here returns a L{Deferred}: a networked cache answers later.
    A cache that can answer at once, without waiting on the network, also
    provides L{IImmediateSessionCache}, and the server then uses that inside
    the handshake.  For a cache that provides only this interface the server
    cannot wait inside OpenSSL's callback: it pauses the handshake while the
    lookup runs (or, where it cannot pause, gives a full handshake, counted
    as C{cache_lookups_late}).
    """

    def store(session_id, der, lifetime):
        """
        Remember a session.

        @param session_id: the key, at most 64 bytes (the server prefixes the
            TLS session ID with a per-service namespace).
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

        @return: a L{Deferred} firing with L{None}.
        """

    def stats():
        """
        Current figures of this cache.

        @return: a L{resumetls.CacheStats}: entries and bytes held now, and
            running counts of hits, misses, stores, evictions, expirations and
            backend errors.
        """


class IImmediateSessionCache(ISessionCache):
    """
    A session cache that answers at once: in the process, or in memory
    shared by processes of one host.  Its C{*_now} methods never wait on the
    network and take microseconds, so the server calls them from inside
    OpenSSL's session callbacks, during the handshake.

    The same rules as L{ISessionCache} hold (expiry, size bound, secrets);
    failures are counted and answered as misses, never raised.
    """

    def store_now(session_id, der, lifetime):
        """As L{ISessionCache.store}, done before returning L{None}."""

    def lookup_now(session_id):
        """As L{ISessionCache.lookup}: the DER L{bytes} or L{None}, now."""

    def remove_now(session_id):
        """As L{ISessionCache.remove}, done before returning L{None}."""


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


class IKeySource(Interface):
    """
    Where a server's session ticket keys come from, and what keeps them
    current: keys generated and rotated in memory, a key file reloaded when
    it changes, or (later) a store shared by a fleet.

    A source feeds one L{ITicketKeys} (its C{key_ring}), which the server's
    ticket callback reads on every handshake.  Sources are built from a
    specification string by the key source registry
    (L{resumetls.key_source_from_spec}), the way caches are built from URLs.
    Nothing a source logs, raises or describes contains key material.
    """

    key_ring = Attribute("The L{ITicketKeys} this source keeps current.")

    def start():
        """
        Begin keeping the key ring current (watch a file, poll a store, answer
        SIGHUP).  Called when the server starts listening; calling it twice
        is harmless.

        @return: L{None} or a L{Deferred} that fires once started.
        """

    def stop():
        """
        Undo everything L{start} began (timers, watchers, signal handlers).
        Called when the server stops listening; calling it twice is harmless.

        @return: L{None} or a L{Deferred} that fires once stopped.
        """

    def reload(why):
        """
        Read the keys again now (SIGHUP, an operator's command).  A source
        that cannot be read is refused, logged with the reason, and the keys
        in use stay.

        @param why: a short word for logs, such as C{"SIGHUP"}.
        @return: L{True} when the keys changed.
        """

    def describe():
        """
        One line for start-up logs and status pages: where the keys come
        from and which one encrypts, by fingerprint.  Never key material.

        @return: L{str}
        """


class IHandshakeHooks(Interface):
    """
    What OpenSSL's callbacks (installed by L{resumetls.openssl}) call into
    the server during a handshake.  Each method receives the pyOpenSSL
    C{Connection} the callback belongs to, or L{None} when pyOpenSSL does not
    know it; keys, session IDs and sessions cross as L{bytes}.  These run
    inside OpenSSL on every handshake: they must be cheap, must not block,
    and must not raise (an exception is turned into a full handshake and
    reported through L{callback_failed}).
    """

    def ticket_encrypt(conn):
        """
        The key to encrypt a new ticket with.

        @return: a L{resumetls.TicketKey}, or L{None} to issue no ticket.
        """

    def ticket_decrypt(conn, name):
        """
        The key a received ticket names.

        @param name: the 16-byte key name from the ticket.
        @return: L{None} (unknown key: full handshake) or a 2-tuple of the
            L{resumetls.TicketKey} and L{True} when the ticket is to be
            renewed under the current key.
        """

    def session_new(conn, session_id, der, lifetime, version):
        """
        A session was made that the cache should keep.

        @param session_id: the TLS session ID (or TLS 1.3 stateful ticket).
        @param der: the serialized session (a secret).
        @param lifetime: seconds it may be resumed.
        @param version: the protocol version number (C{0x0303}, C{0x0304}).
        """

    def session_get(conn, session_id):
        """
        The session a client offered by ID.

        @return: DER L{bytes}, or L{None} for a full handshake.
        """

    def session_corrupt(conn):
        """The cache answered with bytes that are not a session."""

    def handshake_done(conn, reused, version):
        """
        A handshake completed.

        @param reused: L{True} when the session was resumed.
        @param version: the protocol version number.
        """

    def callback_failed(what, exc, tb):
        """
        An exception was raised inside a callback (already turned into a full
        handshake): count and log it.

        @param what: which callback (C{"ticket"}, C{"session-new"}, ...).
        """
