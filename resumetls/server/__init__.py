"""
The server side: the context factory, its handshake hooks and configuration, the endpoint.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
