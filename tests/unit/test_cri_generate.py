"""The committed stubs in cri/gen/ are what `python -m cri.generate` produces from cri/proto/."""
from __future__ import annotations

import re
from pathlib import Path

from cri import generate


def test_committed_stubs_are_current(tmp_path: Path) -> None:
    generate.generate(tmp_path)
    assert not generate.stale_stubs(tmp_path, generate.GEN_DIR), "run `python -m cri.generate` and commit cri/gen/"


def test_requirements_lock_pins_the_generator_of_the_committed_stubs() -> None:
    lock = (generate.GEN_DIR.parents[1] / "requirements.lock").read_text()
    pinned = re.search(r"^grpcio-tools==(\S+)", lock, re.MULTILINE)
    assert pinned and pinned.group(1) == generate.generated_by(generate.GEN_DIR), \
        "requirements.lock must pin the grpcio-tools that generated cri/gen (make lock, python -m cri.generate)"


def _as_another_generator_would(out_dir: Path) -> None:
    for path in out_dir.glob("*_pb2_grpc.py"):
        path.write_text(re.sub(r"GRPC_GENERATED_VERSION = '[^']+'", "GRPC_GENERATED_VERSION = '0.0.1'",
                               path.read_text()) + "\n# another generator's layout\n")
    for path in out_dir.glob("*.pyi"):
        path.write_text(path.read_text() + "\n# another generator's layout\n")


def test_another_generator_version_alone_is_not_stale(tmp_path: Path, monkeypatch) -> None:
    """A machine whose grpcio-tools is not the pinned one: only what the stubs mean is compared."""
    monkeypatch.setattr(generate, "generator_version", lambda: "0.0.1")
    generate.generate(tmp_path)
    _as_another_generator_would(tmp_path)
    assert generate.stale_stubs(tmp_path, generate.GEN_DIR) == []


def test_with_the_pinned_generator_every_byte_counts(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate, "generator_version", lambda: generate.generated_by(generate.GEN_DIR))
    generate.generate(tmp_path)
    _as_another_generator_would(tmp_path)
    assert "api_pb2.pyi" in generate.stale_stubs(tmp_path, generate.GEN_DIR)


def test_a_changed_message_or_method_is_stale(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(generate, "generator_version", lambda: "0.0.1")
    generate.generate(tmp_path)
    api = tmp_path / "api_pb2.py"
    api.write_text(api.read_text().replace("\\x07version\\x18\\x01", "\\x07version\\x18\\x02", 1))
    grpc_module = tmp_path / "events_pb2_grpc.py"
    grpc_module.write_text(grpc_module.read_text().replace("/Subscribe'", "/Subscribed'"))
    stale = generate.stale_stubs(tmp_path, generate.GEN_DIR)
    assert stale == ["api_pb2.py", "events_pb2_grpc.py"]


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
