"""
The context factories this process serves with, for status pages and
metrics (held weakly: a factory that nobody uses any more disappears).
"""

from __future__ import annotations

import weakref
from typing import Any

_factories: weakref.WeakSet = weakref.WeakSet()


def register(factory: Any) -> None:
    _factories.add(factory)


def factories() -> list[Any]:
    return list(_factories)
