"""Decoded objects kept for watch fan-out (Registry.decode_shared): every watcher of a resource converts the
same storage event, so a stored value is decoded once for all of them. Watchers convert an event soon after
it is published, so only the latest events need to be kept, oldest out first.

Bounded in entries and in the bytes of the encoded values it holds (a decoded object takes 4 to 7 times its
JSON): bounded in entries only (512 per resource), a client growing an object it may write to some tens of
KiB made it hold ~30 MB of decoded copies in 10 minutes of the hostile soak. The newest entry stays even
past the byte bound, so a big object's event is still decoded once for all its watchers. One instance
serves every registry of the server (API), so the bound is the server's, not each resource's."""
from __future__ import annotations

import collections
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str, str, int]  # (apiVersion, kind, storage key, mod revision)

MAX_ENTRIES = 512
MAX_ENCODED_BYTES = 1024 * 1024


class DecodedObjects:
    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_ENCODED_BYTES) -> None:
        self._entries: collections.OrderedDict[Key, tuple[Obj, int]] = collections.OrderedDict()
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self.encoded_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> Obj | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def put(self, key: Key, obj: Obj, encoded_bytes: int) -> None:
        replaced = self._entries.pop(key, None)
        if replaced is not None:
            self.encoded_bytes -= replaced[1]
        self._entries[key] = (obj, encoded_bytes)
        self.encoded_bytes += encoded_bytes
        while len(self._entries) > 1 and (len(self._entries) > self._max_entries
                                          or self.encoded_bytes > self._max_bytes):
            _, (_, dropped) = self._entries.popitem(last=False)
            self.encoded_bytes -= dropped
