"""
C{twist resumetls --workers N}: one parent process opens every listening
socket and supervises N worker processes that serve them, sharing one
session cache (LMDB, L{resumetls.cache.lmdb}) and one set of ticket keys.

  - L{resumetls.workers.sockets}: the listening sockets and the private
    cache directory the parent makes;
  - L{resumetls.workers.control}: the messages between parent and workers
    (an AMP connection over an inherited socket pair: secrets never pass
    through argv or the environment);
  - L{resumetls.workers.keys}: ticket keys owned and rotated by the parent,
    mirrored by every worker;
  - L{resumetls.workers.supervisor}: the parent (start, restart with
    backoff, SIGHUP, SIGTERM, no orphans);
  - L{resumetls.workers.child}: a worker (adopts the sockets, serves, drains);
  - L{resumetls.workers.status}: one status and one metrics endpoint for the
    whole server.
"""
