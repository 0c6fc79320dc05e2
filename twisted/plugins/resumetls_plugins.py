"""
Twisted plugins of resumetls.  Plugin discovery imports this file, so it only
instantiates light objects; the real work is imported when a plugin is used.
"""
