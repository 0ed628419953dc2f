"""Pure parts of the create path's speed work: pooled uids, the JSON copy, watcher grouping, Watch.poll."""
import asyncio
import copy
import uuid

import pytest

from apiserver.registry import copy_object, new_uid
from apiserver.storage.history import WatchHistory
from apiserver.storage.interface import EventType, KeyValue, StorageEvent, WatchClosed


def test_uids_are_distinct_version_4_uuids():
    uids = [new_uid() for _ in range(2000)]  # spans several 4 KiB pools
    assert len(set(uids)) == len(uids)
    for text in uids:
        parsed = uuid.UUID(text)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == text


def test_copy_object_is_a_deep_copy():
    original = {"a": [1, {"b": "c"}, None, 1.5, True], "t": (1, [2]), "m": {"n": {}}}
    copied = copy_object(original)
    assert copied == original == copy.deepcopy(original)
    copied["a"][1]["b"] = "changed"
    copied["t"][1].append(3)
    copied["m"]["n"]["x"] = 1
    assert original == {"a": [1, {"b": "c"}, None, 1.5, True], "t": (1, [2]), "m": {"n": {}}}


def event(key: str, revision: int) -> StorageEvent:
    return StorageEvent(EventType.PUT, revision, KeyValue(key, b"{}", revision, revision), None)


async def test_history_offers_events_to_their_resource_and_wider_watchers_only():
    history = WatchHistory(100)
    pods = history.watch("/registry/pods/", 0)
    pods_in_a = history.watch("/registry/pods/a/", 0)
    everything = history.watch("/registry/", 0)
    nodes = history.watch("/registry/nodes/", 0)
    for revision, key in enumerate(["/registry/pods/a/x", "/registry/pods/b/y", "/registry/nodes/n",
                                    "/shipmate/pki/ca"], start=1):
        history.publish(event(key, revision))

    def drained(watch):
        keys = []
        while (item := watch.poll()) is not None:
            keys.append(item.kv.key)
        return keys
    assert drained(pods) == ["/registry/pods/a/x", "/registry/pods/b/y"]
    assert drained(pods_in_a) == ["/registry/pods/a/x"]
    assert drained(everything) == ["/registry/pods/a/x", "/registry/pods/b/y", "/registry/nodes/n"]
    assert drained(nodes) == ["/registry/nodes/n"]
    late = history.watch("/registry/pods/", 1)  # replay from the kept events, after revision 1
    assert drained(late) == ["/registry/pods/b/y"]
    pods.stop()
    with pytest.raises(WatchClosed):
        pods.poll()
    history.publish(event("/registry/pods/a/z", 5))
    assert drained(pods_in_a) == ["/registry/pods/a/z"]
    assert drained(late) == ["/registry/pods/a/z"] and drained(everything) == ["/registry/pods/a/z"]
    history.close_watchers()
    for watch in (pods_in_a, everything, nodes, late):
        with pytest.raises(WatchClosed):
            await asyncio.wait_for(watch.next(), 1)


def test_the_watch_history_is_bounded_in_bytes_too():
    """A client rewriting a big object must not make the history hold history_size copies of it: past
    max_bytes the oldest events go (a watch from before them gets 410, as past the event bound)."""
    from apiserver.storage.interface import RevisionCompacted
    history = WatchHistory(10000, max_bytes=10 * 1024 * 1024)
    big = b"x" * (1024 * 1024)
    previous = None
    for revision in range(1, 101):
        current = KeyValue("/registry/configmaps/ns/big", big, 1, revision)
        history.publish(StorageEvent(EventType.PUT, revision, current, previous))
        previous = current
    kept = len(history._events)
    assert 4 <= kept <= 5, kept              # 2 MiB an event (value + previous value) in 10 MiB
    assert history.compacted_revision == 100 - kept
    with pytest.raises(RevisionCompacted):
        history.watch("/registry/configmaps/", 50)
    watch = history.watch("/registry/configmaps/", 100 - kept)
    watch.stop()
