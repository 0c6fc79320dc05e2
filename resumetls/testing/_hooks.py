"""
Contract tests that exist only when a test case defines the hook they need.

A test skipped because a backend cannot do something would fail this
project's CI (a skip there means something is missing), so such tests are
left out of a test case instead, and added when it defines the hook.
"""

from __future__ import annotations


def add_hooked_tests(cls: type, mixin: type, hooked: dict[str, str]) -> None:
    """
    Give C{cls} the test C{test_<name>} for each C{hooked_<name>} of C{mixin}
    whose hook (a method name) C{cls} overrides, or whose hook is a class
    attribute C{cls} sets true.
    """
    for name, hook in hooked.items():
        mine, default = getattr(cls, hook), getattr(mixin, hook)
        wanted = mine if isinstance(default, bool) else mine is not default
        if wanted:
            setattr(cls, f"test_{name}", getattr(mixin, f"hooked_{name}"))
