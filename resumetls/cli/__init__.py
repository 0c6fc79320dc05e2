"""
Command-line parts: twist resumetls, the demo page, metrics, doctor, keys, probe.

Nothing is imported here, so that importing a module of this package stays
cheap; the public names are re-exported from L{resumetls}.
"""
