"""Generate the Python stubs in cri/gen/ from the protos in cri/proto/.

Run `python -m cri.generate` after changing a .proto and commit the result;
tests/unit/test_cri_generate.py fails while the committed stubs are stale.
"""
from __future__ import annotations

import argparse
import ast
import importlib.metadata
import importlib.resources
import re
import sys
from pathlib import Path

from grpc_tools import protoc

PROTO_DIR = Path(__file__).parent / "proto"
GEN_DIR = Path(__file__).parent / "gen"
GEN_PACKAGE = "cri.gen"
INIT_TEXT = '"""Generated from cri/proto/ by `python -m cri.generate`; do not edit."""\n'

# protoc writes `import api_pb2 as api__pb2` into *_pb2_grpc.py, which only
# works with cri/gen/ on sys.path; rewrite them into package imports.
_SIBLING_IMPORT = re.compile(r"^import (\w+_pb2) as (\w+)$", re.MULTILINE)


def well_known_include_dir() -> Path:
    """google/protobuf/*.proto (Any, Timestamp, Empty) as shipped by grpcio-tools."""
    return Path(str(importlib.resources.files("grpc_tools") / "_proto"))


def generate(out_dir: Path = GEN_DIR) -> list[Path]:
    """Write the CRI and containerd stubs into out_dir and return the files written."""
    return generate_stubs(PROTO_DIR, out_dir, GEN_PACKAGE, INIT_TEXT)


def generate_stubs(proto_dir: Path, out_dir: Path, package: str, init_text: str) -> list[Path]:
    """Compile every .proto in proto_dir into out_dir as the package `package` (message, .pyi and gRPC
    modules, sibling imports made package-relative); returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*_pb2*.py*"):
        stale.unlink()
    sources = sorted(proto_dir.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"--proto_path={proto_dir}",
        f"--proto_path={well_known_include_dir()}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(path) for path in sources),
    ]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {', '.join(p.name for p in sources)}")
    local_modules = {f"{path.stem}_pb2" for path in sources}
    written = [out_dir / "__init__.py"]
    written[0].write_text(init_text)
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = path.read_text()
        if path.name.endswith("_pb2_grpc.py") and "Stub" not in text:
            path.unlink()  # protoc writes an empty module for protos without a service
            continue
        fixed = _SIBLING_IMPORT.sub(
            lambda m: (f"from {package} import {m.group(1)} as {m.group(2)}"
                       if m.group(1) in local_modules else m.group(0)),
            text,
        )
        if fixed != text:
            path.write_text(fixed)
        written.append(path)
    return written


def generator_version() -> str:
    return importlib.metadata.version("grpcio-tools")


def generated_by(gen_dir: Path) -> str | None:
    """The grpcio-tools version stamped into the gRPC modules of gen_dir (None without any)."""
    for path in sorted(gen_dir.glob("*_pb2_grpc.py")):
        stamp = re.search(r"^GRPC_GENERATED_VERSION = '([^']+)'$", path.read_text(), re.MULTILINE)
        if stamp:
            return stamp.group(1)
    return None


def _meaning(path: Path) -> object:
    """What a generated module says, without the generator's version and layout: a message module's
    serialized FileDescriptorProto (every message, field number and service), a gRPC module's classes
    and method paths; the __init__ text as is. Type stubs (.pyi) follow from the descriptor."""
    if path.suffix == ".pyi":
        return None
    text = path.read_text()
    if not path.name.endswith("_pb2.py") and not path.name.endswith("_pb2_grpc.py"):
        return text
    tree = ast.parse(text)
    if path.name.endswith("_pb2.py"):
        return [node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute) and node.func.attr == "AddSerializedFile"]
    classes = sorted(node.name for node in tree.body if isinstance(node, ast.ClassDef))
    paths = sorted(node.value for node in ast.walk(tree)
                   if isinstance(node, ast.Constant) and isinstance(node.value, str)
                   and re.fullmatch(r"/[\w.]+/\w+", node.value))
    return classes, paths


def stale_stubs(fresh_dir: Path, committed_dir: Path) -> list[str]:
    """Files of committed_dir that differ from the ones just generated into fresh_dir. With the same
    grpcio-tools version as the committed files were made with, every byte counts; with another one
    (a machine that did not install requirements.lock), what the stubs mean: their descriptors,
    services and method paths."""
    fresh = {path.name: path for path in fresh_dir.iterdir() if path.is_file()}
    committed = {path.name: path for path in committed_dir.iterdir() if path.is_file()}
    if sorted(fresh) != sorted(committed):
        return sorted(set(fresh) ^ set(committed))
    same_generator = generated_by(committed_dir) == generator_version()
    return [name for name in sorted(fresh)
            if (fresh[name].read_text() != committed[name].read_text() if same_generator
                else _meaning(fresh[name]) != _meaning(committed[name]))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cri.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output directory (default: cri/gen)")
    options = parser.parse_args(argv)
    for path in generate(options.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
