"""The 1 s relist stays cheap: metadata and labels of an object are read once, an unchanged runtime yields
no events without a diff, and changes still come out as events (pod names follow the sandboxes)."""
from __future__ import annotations

from dataclasses import dataclass, field

from cri.gen import api_pb2

from agent import labels
from agent.pleg import EventType, Relister, diff_snapshots

NODE = "n1"


@dataclass
class Reads:
    metadata: int = 0
    labels: int = 0


@dataclass
class FakeSandbox:
    id: str
    uid: str
    state: int
    reads: Reads

    @property
    def metadata(self) -> api_pb2.PodSandboxMetadata:
        self.reads.metadata += 1
        return api_pb2.PodSandboxMetadata(uid=self.uid, namespace="ns", name=f"pod-{self.uid}")


@dataclass
class FakeContainer:
    id: str
    uid: str
    state: int
    reads: Reads

    @property
    def labels(self) -> dict[str, str]:
        self.reads.labels += 1
        return {labels.POD_UID: self.uid, labels.NODE_NAME: NODE}


@dataclass
class FakeRuntime:
    pods: int
    reads: Reads = field(default_factory=Reads)
    exited: set[str] = field(default_factory=set)

    async def list_pod_sandbox(self, filter=None) -> list[FakeSandbox]:
        return [FakeSandbox(f"s{i}", f"u{i}", api_pb2.SANDBOX_READY, self.reads) for i in range(self.pods)]

    async def list_containers(self, filter=None) -> list[FakeContainer]:
        return [FakeContainer(f"c{i}", f"u{i}", api_pb2.CONTAINER_EXITED if f"c{i}" in self.exited
                              else api_pb2.CONTAINER_RUNNING, self.reads) for i in range(self.pods)]


async def test_relist_reads_each_objects_pod_once_and_still_reports_changes():
    runtime = FakeRuntime(110)
    relister = Relister(runtime, NODE)  # type: ignore[arg-type]
    first = await relister.relist()
    assert len(first) == 220 and {e.type for e in first} == {EventType.CONTAINER_STARTED}
    assert runtime.reads.metadata == 110 and runtime.reads.labels == 110
    assert relister.pod_names["u7"] == ("ns", "pod-u7")

    for _ in range(5):
        assert await relister.relist() == []
    assert runtime.reads.metadata == 110 and runtime.reads.labels == 110   # nothing read again

    runtime.exited.add("c3")
    died = await relister.relist()
    assert [(e.uid, e.type, e.id) for e in died] == [("u3", EventType.CONTAINER_DIED, "c3")]
    assert died[0].observed_at == relister.last_relist

    runtime.pods = 109  # pod u109 gone: its sandbox and container removed, its name forgotten
    removed = await relister.relist()
    assert {(e.uid, e.type, e.id) for e in removed} == {("u109", EventType.CONTAINER_REMOVED, "s109"),
                                                         ("u109", EventType.CONTAINER_REMOVED, "c109")}
    assert "u109" not in relister.pod_names and relister.pod_uids() == {f"u{i}" for i in range(109)}
    assert relister.uid_of("c5") == "u5"


def test_diff_skips_unchanged_pods_and_reports_changed_ones():
    old = {"a": {"c1": "running"}, "b": {"c2": "running"}}
    new = {"a": {"c1": "running"}, "b": {"c2": "exited"}, "c": {"c3": "created"}}
    assert [(e.uid, e.type) for e in diff_snapshots(old, new)] == [("b", EventType.CONTAINER_DIED),
                                                                   ("c", EventType.CONTAINER_CHANGED)]
