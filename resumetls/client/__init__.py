"""
Clients that resume: connection creator, server profiles, session stores, endpoint.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
