"""
Twisted plugins of resumetls: C{twist resumetls} and the C{resumetls:} server
and client endpoints.  Plugin discovery imports this file, so it only builds light
objects; the real work is imported when a plugin is used.
"""

from twisted.application.service import ServiceMaker

from resumetls.client.endpoint import ResumeTLSClientParser
from resumetls.server.endpoint import ResumeTLSServerParser

resumetls = ServiceMaker(
    "resumetls",
    "resumetls.cli.tap",
    "TLS with session resumption (tickets and session IDs) for any protocol",
    "resumetls",
)
resumetlsServerParser = ResumeTLSServerParser()
resumetlsClientParser = ResumeTLSClientParser()
