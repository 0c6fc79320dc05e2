"""
The names other modules imported from the one-module binding.
"""

# shim during the split; removed at the end
from resumetls.openssl.errors import OpenSSLRouteUnavailable  # noqa: F401
from resumetls.openssl.functions import (  # noqa: F401
    CACHE_CALLBACKS,
    CONTEXT_CERTIFICATE,
    CUSTOM_TICKET_KEYS,
    EXTERNAL_CACHE,
    HANDSHAKE_OBSERVER,
    SERVER_COMMON,
    SSL_CB_HANDSHAKE_DONE,
    SSL_CTRL_GET_SESS_CACHE_SIZE,
    SSL_CTRL_SESS_NUMBER,
    SSL_CTRL_SET_SESS_CACHE_SIZE,
    SSL_OP_NO_TICKET,
    STILL_WORKS,
    TICKET_CALLBACK,
    TLS1_3_VERSION,
    server_functions,
)
from resumetls.openssl.report import route_report  # noqa: F401
from resumetls.openssl.route import OpenSSLRoute  # noqa: F401
from resumetls.openssl.sessions import (  # noqa: F401
    SessionDetails,
    connection_reused,
    session_details,
    session_from_der,
    session_to_der,
)
from resumetls.openssl.symbols import route  # noqa: F401
