"""
Shim during the split; removed at the end: the helpers now live in
L{tests.support}, one module per thing they support.
"""

import ssl  # noqa: F401  (tests reach _support.ssl)

from tests.support.certificates import (  # noqa: F401
    _CERT_CACHE,
    certificate,
    issue,
    make_certificate,
    options,
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
)
from tests.support.python_clients import (  # noqa: F401
    _INSECURE,
    _python_client,
    https_get,
    python_client,
    python_context,
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
