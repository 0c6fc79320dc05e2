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

# The names tests use, re-exported so a test can say C{support.listen(...)}.
import ssl  # noqa: F401  (tests reach support.ssl)

from tests.support.certificates import (  # noqa: F401
    _CERT_CACHE,
    certificate,
    issue,
    make_certificate,
    options,
    pem_files,
    write_pem,
)
from tests.support.ports import CLIENT_TIMEOUT, free_port, wait_for_port  # noqa: F401
from tests.support.processes import (  # noqa: F401
    ROOT,
    _drop_file_capabilities,
    environment,
    read_output,
    run_unprivileged,
    start_process,
    start_twist,
    stop_process,
)
from tests.support.python_clients import (  # noqa: F401
    _INSECURE,
    _python_client,
    https_get,
    python_client,
    python_context,
    read_line,
)
from tests.support.s_client import (  # noqa: F401
    HTTP_REQUEST,
    OPENSSL,
    parse_s_client,
    s_client,
    session_ticket,
    tickets_in,
)
from tests.support.s_client import run_s_client as _s_client  # noqa: F401
from tests.support.servers import InfoFactory, InfoProtocol, listen  # noqa: F401
from tests.support.tickets import (  # noqa: F401
    _encode_length,
    _read_tlv,
    _tlv,
    open_ticket,
    rewrite_session,
)
