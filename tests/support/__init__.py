"""
Helpers of the test suite, by what they support:

  - L{certificates}: throwaway certificates and C{CertificateOptions};
  - L{ports}: free loopback ports, waiting for a listener, client timeouts;
  - L{s_client}: running C{openssl s_client} and reading what it said;
  - L{tickets}: opening TLS 1.2 tickets and forging session files;
  - L{servers}: a resuming server in this process that reports each
    connection;
  - L{python_clients}: TLS clients made with Python's C{ssl} module;
  - L{processes}: servers and programs in subprocesses.

Tests of resumetls' public behaviour in memory use L{resumetls.testing}.
"""
