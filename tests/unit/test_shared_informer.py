"""shipmate.informer against a scripted source: list, watch from the list's resourceVersion, resume after
the stream ends (bookmarks honoured), relist on 410 Expired, back off on failures; and the registry source."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import pytest

from apiserver.api import API
from apiserver.informer import RegistryInformer, RegistrySource
from apiserver.storage.sqlite import SQLiteStorage
from shipmate.informer import Expired, Informer, object_key

Obj = dict[str, Any]
_real_sleep = asyncio.sleep


def obj(name: str, rv: int, namespace: str = "ns", **extra: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": str(rv)}, **extra}


@dataclass
class Event:
    type: str
    object: Obj


class FakeSource:
    """`listing` is what list() answers; each watch() plays the next script: an exception to raise, a list of
    events then the end of the stream, or a queue to stream events from (an exception is raised) until None.
    No script left: it blocks."""

    name = "things"

    def __init__(self, listing: list[Obj], rv: str, *scripts: Any):
        self.listing, self.rv = listing, rv
        self.scripts = list(scripts)
        self.lists = 0
        self.watches: list[str] = []
        self.list_errors: list[Exception] = []

    async def list(self) -> tuple[list[Obj], str]:
        self.lists += 1
        if self.list_errors:
            raise self.list_errors.pop(0)
        return list(self.listing), self.rv

    async def watch(self, resource_version: str) -> AsyncIterator[Event]:
        self.watches.append(resource_version)
        if not self.scripts:
            await asyncio.Event().wait()
        script = self.scripts.pop(0)
        if isinstance(script, Exception):
            raise script
        if isinstance(script, asyncio.Queue):
            while (event := await script.get()) is not None:
                if isinstance(event, Exception):
                    raise event
                yield event
            return
        for event in script:
            yield event


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached"
        await _real_sleep(0.001)


class Running:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer

    async def __aenter__(self) -> Informer:
        self.task = asyncio.create_task(self.informer.run())
        return self.informer

    async def __aexit__(self, *exc: object) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def recorder() -> tuple[list[tuple[str, str, str | None]], Callable[[str, Obj, Obj | None], None]]:
    """Changes as (type, object's resourceVersion, old object's resourceVersion or None)."""
    seen: list[tuple[str, str, str | None]] = []

    def handler(event_type: str, new: Obj, old: Obj | None) -> None:
        seen.append((event_type, f"{new['metadata']['name']}@{new['metadata']['resourceVersion']}",
                     None if old is None else old["metadata"]["resourceVersion"]))
    return seen, handler


async def test_lists_then_watches_from_the_lists_version_and_hands_over_old_and_new() -> None:
    stream: asyncio.Queue = asyncio.Queue()
    source = FakeSource([obj("a", 5), obj("b", 6)], "7", stream)
    seen, handler = recorder()
    async with Running(Informer(source, handler)) as informer:
        await asyncio.wait_for(informer.synced.wait(), 3)
        assert seen == [("ADDED", "a@5", None), ("ADDED", "b@6", None)]
        await eventually(lambda: source.watches == ["7"])
        stream.put_nowait(Event("MODIFIED", obj("a", 8)))
        stream.put_nowait(Event("ADDED", obj("b", 9)))        # a known key: reported as a modification
        stream.put_nowait(Event("ADDED", obj("c", 10)))
        stream.put_nowait(Event("DELETED", obj("b", 11)))
        await eventually(lambda: len(seen) == 6)
        assert seen[2:] == [("MODIFIED", "a@8", "5"), ("MODIFIED", "b@9", "6"), ("ADDED", "c@10", None),
                            ("DELETED", "b@11", "9")]
        assert set(informer.cache) == {"ns/a", "ns/c"} and informer.resource_version == "11"


async def test_a_watch_that_ends_is_resumed_from_the_last_version_bookmarks_included() -> None:
    bookmark = Event("BOOKMARK", {"metadata": {"resourceVersion": "9"}})
    source = FakeSource([], "3", [Event("ADDED", obj("a", 4)), bookmark])
    seen, handler = recorder()
    async with Running(Informer(source, handler)) as informer:
        await eventually(lambda: len(source.watches) == 2)
        assert source.watches == ["3", "9"] and source.lists == 1
        assert seen == [("ADDED", "a@4", None)]           # a bookmark changes nothing but the version
        assert informer.resource_version == "9"


async def test_expired_relists_and_hands_over_the_differences() -> None:
    stream: asyncio.Queue = asyncio.Queue()
    source = FakeSource([obj("kept", 1), obj("gone", 2), obj("same", 3)], "3", stream)
    seen, handler = recorder()
    async with Running(Informer(source, handler)) as informer:
        stream.put_nowait(Event("MODIFIED", obj("kept", 4)))
        await eventually(lambda: len(seen) == 4)
        source.listing, source.rv = [obj("kept", 5), obj("same", 3), obj("new", 6)], "6"
        stream.put_nowait(Expired("too old resource version"))
        await eventually(lambda: len(source.watches) == 2)
        assert source.watches == ["3", "6"] and source.lists == 2
        # A relist reports what vanished (its last state), then every listed object (upstream's Replace).
        assert seen[4:] == [("DELETED", "gone@2", "2"), ("MODIFIED", "kept@5", "4"), ("MODIFIED", "same@3", "3"),
                            ("ADDED", "new@6", None)]
        assert set(informer.cache) == {"ns/kept", "ns/same", "ns/new"}


async def test_failures_back_off_exponentially_and_a_healthy_watch_resets_the_backoff(monkeypatch) -> None:
    delays: list[float] = []

    async def recording_sleep(delay: float, *args: Any) -> Any:
        delays.append(delay)
        return await _real_sleep(0, *args)
    monkeypatch.setattr(asyncio, "sleep", recording_sleep)
    healthy: asyncio.Queue = asyncio.Queue()
    source = FakeSource([obj("a", 1)], "1", RuntimeError("connection reset"), [],  # [] ends at once: a failure
                        RuntimeError("connection reset"), RuntimeError("connection reset"),
                        [Event("MODIFIED", obj("a", 2))], RuntimeError("connection reset"), healthy)
    source.list_errors = [RuntimeError("server unavailable")]
    async with Running(Informer(source, min_backoff=1.0, max_backoff=4.0)) as informer:
        await eventually(lambda: len(source.watches) == 7)
        assert delays == [1.0, 2.0, 4.0, 4.0, 4.0, 1.0]
        assert source.lists == 2 and source.watches == ["1", "1", "1", "1", "1", "2", "2"]
        assert informer.cache["ns/a"]["metadata"]["resourceVersion"] == "2"


async def test_a_failing_handler_does_not_stop_the_others_and_transform_shapes_the_cache() -> None:
    stream: asyncio.Queue = asyncio.Queue()
    source = FakeSource([obj("a", 1, labels={"x": "y"})], "1", stream)
    names: list[tuple[str, str, str | None]] = []

    def broken(*_args: Any) -> None:
        raise RuntimeError("handler bug")
    informer = Informer(source, broken, transform=lambda o: o["metadata"]["name"].upper())
    informer.add_handler(lambda event_type, name, old: names.append((event_type, name, old)))
    async with Running(informer):
        await eventually(lambda: source.watches == ["1"])
        stream.put_nowait(Event("DELETED", obj("a", 2)))
        await eventually(lambda: len(names) == 2)
    assert names == [("ADDED", "A", None), ("DELETED", "A", "A")]
    assert informer.cache == {}


def test_object_key_of_namespaced_and_cluster_scoped_objects() -> None:
    assert object_key(obj("a", 1)) == "ns/a"
    assert object_key({"metadata": {"name": "node-1"}}) == "/node-1"


async def test_registry_source_lists_watches_and_says_expired_after_compaction(tmp_path) -> None:
    storage = SQLiteStorage(str(tmp_path / "state.db"), history_size=2)
    await storage.start()
    api = API(storage)
    await api.start()
    try:
        config_maps = api.registry("", "configmaps")
        source = RegistrySource(config_maps)
        informer = RegistryInformer(config_maps)
        async with Running(informer):
            await asyncio.wait_for(informer.synced.wait(), 3)
            items, listed_at = await source.list()
            for name in ("one", "two", "three"):
                await api.create(config_maps, "default", {"metadata": {"name": name}, "data": {"k": name}})
            await eventually(lambda: {"default/one", "default/two", "default/three"} <= set(informer.cache))
        assert source.name == "configmaps" and items == []
        with pytest.raises(Expired):
            async for _event in source.watch(listed_at):
                pass
    finally:
        await storage.close()
