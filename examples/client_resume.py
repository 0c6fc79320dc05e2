"""
A Twisted client that resumes: two HTTPS requests through an Agent whose
second connection resumes the first one's session.

    python examples/client_resume.py https://localhost:8443/status.json [ca.pem]

Against `twist resumetls --port 8443` (whose development certificate lives in
~/.local/share/resumetls/dev-cert.pem, pass it as ca.pem), the second request
shows "resumed": true.  Sessions live in memory here; pass
store=FileClientSessionStore(path) to keep them across runs.
"""

import json
import sys
import warnings

from twisted.internet import task
from twisted.internet.defer import ensureDeferred
from twisted.internet.ssl import Certificate
from twisted.web.client import Agent, readBody

from resumetls import ResumingPolicyForHTTPS


async def main(reactor, url, cafile=None):
    trust = None
    if cafile:
        with open(cafile, "rb") as f:
            trust = Certificate.loadPEM(f.read())
    policy = ResumingPolicyForHTTPS(trustRoot=trust)
    agent = Agent(reactor, policy)
    for attempt in ("first", "second"):
        response = await agent.request(b"GET", url.encode())
        body = await readBody(response)
        try:  # the demo's status.json says how the server saw the connection
            shown = json.loads(body)["connection"]
        except (ValueError, KeyError):
            shown = body[:100]
        print(f"{attempt} request: {response.code} {shown}")
    creator = policy.creatorForNetloc(*_netloc(url))
    print(f"connections that resumed: {creator.resumed}")


def _netloc(url):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname.encode(), parts.port or 443


if __name__ == "__main__":
    warnings.simplefilter("ignore", DeprecationWarning)
    task.react(lambda reactor: ensureDeferred(main(reactor, *sys.argv[1:])))
