"""
Helpers for testing code that uses resumetls, and resumetls' own backends,
without sockets or a network (like C{treq.testing}).

  - L{resumetls.testing.pump}: both ends of a TLS connection in one process
    (C{iosim}, C{TLSMemoryBIOFactory} and a C{Clock}), deterministic;
  - L{resumetls.testing.keys}: the same ticket keys in every run, and a key
    source that holds them;
  - L{resumetls.testing.caches}: session caches that answer late, fail, or
    answer with garbage, to test a server's fallbacks;
  - L{resumetls.testing.cache_contract} and
    L{resumetls.testing.keysource_contract}: test mixins with the contract
    every L{ISessionCache} and every L{IKeySource} must honour.  A new
    backend's tests mix one in and say how to build the backend.

Import names from the modules above; nothing is imported here, so that
importing one helper does not pull in the others (the pump imports
C{twisted.test.iosim}).
"""
