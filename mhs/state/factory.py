"""Choose the state store from its URL."""

from __future__ import annotations

import weakref

from mhs.state.base import StateStore
from mhs.state.memory import MemoryStateStore

# The in-process store is one per process and prefix, as Redis is one per deployment: roles
# that `serve all` or `simulate` run in one process share it while any of them holds it.
_in_process: weakref.WeakValueDictionary[str, StateStore] = weakref.WeakValueDictionary()


def create_state_store(url: str | None, *, prefix: str) -> StateStore:
    """The in-process store for ``None`` (records last as long as the process, and are not
    shared with other processes; every caller in this process with this prefix gets the same
    one); Redis for ``redis://``, ``rediss://`` or ``unix://``."""
    if url is None:
        store = _in_process.get(prefix)
        if store is None:
            store = _in_process[prefix] = MemoryStateStore(prefix)
        return store
    # redis-py takes about 0.2 s to import; the in-process store and tools never need it.
    from mhs.state.redis import RedisStateStore  # noqa: PLC0415

    return RedisStateStore(url, prefix=prefix)
