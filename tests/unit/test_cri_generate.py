"""The committed stubs in cri/gen/ are what `python -m cri.generate` produces from cri/proto/."""
from __future__ import annotations

from pathlib import Path

from cri import generate


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    fresh = {path.name: path.read_text() for path in tmp_path.iterdir() if path.is_file()}
    committed = {path.name: path.read_text() for path in generate.GEN_DIR.iterdir() if path.is_file()}
    assert sorted(committed) == sorted(fresh), "run `python -m cri.generate` and commit cri/gen/"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files {stale}: run `python -m cri.generate`"


def test_generated_grpc_modules_import_inside_the_package() -> None:
    from cri.gen import api_pb2_grpc, events_pb2_grpc

    assert api_pb2_grpc.api__pb2.__name__ == "cri.gen.api_pb2"
    assert events_pb2_grpc.events__pb2.__name__ == "cri.gen.events_pb2"


def test_upstream_field_numbers_are_kept() -> None:
    """Spot checks against upstream CRI v1 and containerd 1.6 numbering (the wire format)."""
    from cri.gen import api_pb2, events_pb2, task_events_pb2

    def number(message, field: str) -> int:
        return message.DESCRIPTOR.fields_by_name[field].number

    assert number(api_pb2.PodSandboxConfig, "linux") == 8
    assert number(api_pb2.LinuxSandboxSecurityContext, "run_as_group") == 8
    assert number(api_pb2.LinuxContainerSecurityContext, "run_as_group") == 12
    assert number(api_pb2.ContainerConfig, "linux") == 15
    assert number(api_pb2.ContainerStatus, "resources") == 16
    assert number(api_pb2.ImageSpec, "user_specified_image") == 18
    assert number(api_pb2.Namespace, "options") == 2
    assert api_pb2.NamespaceMode.Value("NODE") == 2
    assert number(events_pb2.Envelope, "event") == 4
    assert number(task_events_pb2.TaskExit, "exited_at") == 5
    assert number(task_events_pb2.TaskCreate, "pid") == 6
