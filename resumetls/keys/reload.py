"""Shim during the split; removed at the end: see L{resumetls.keys.sources}."""

from resumetls.keys.sources import KeyFileSource as KeyFileWatcher  # noqa: F401
