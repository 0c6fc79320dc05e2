"""
resumetls: TLS session resumption for Twisted servers and clients.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
