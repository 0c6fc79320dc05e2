"""
Access to the OpenSSL functions pyOpenSSL does not expose.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
