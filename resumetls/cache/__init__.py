"""
Server-side session caches and the cache URL registry.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
