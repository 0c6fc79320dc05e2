"""Client session stores: in memory and in a private file."""

# shim during the split; removed at the end
from resumetls.client.filestore import ClientStoreError, FileClientSessionStore  # noqa: F401
from resumetls.client.memorystore import (  # noqa: F401
    KEEP_PER_SERVER,
    SWEEP_INTERVAL,
    MemoryClientSessionStore,
)
