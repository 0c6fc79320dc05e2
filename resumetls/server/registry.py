"""
The context factories this process serves with, for status pages and
metrics (held weakly: a factory that nobody uses any more disappears).
"""

from __future__ import annotations

import weakref
from typing import Any

_factories: weakref.WeakSet = weakref.WeakSet()


def register(factory: Any) -> None:
    """Show C{factory} (a L{ResumingContextFactory}) on status pages and metrics."""
    _factories.add(factory)


def factories() -> list[Any]:
    """The registered factories still in use, in no particular order."""
    return list(_factories)
