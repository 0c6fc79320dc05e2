"""
Session ticket keys: values, the key ring and rotation, key files, key sources.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
