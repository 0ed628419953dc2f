"""Generate the Python stubs in cri/gen/ from the protos in cri/proto/.

Run `python -m cri.generate` after changing a .proto and commit the result;
tests/unit/test_cri_generate.py fails while the committed stubs are stale.
"""
from __future__ import annotations

import argparse
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cri.generate", description=__doc__)
    parser.add_argument("--out", type=Path, default=GEN_DIR, help="output directory (default: cri/gen)")
    options = parser.parse_args(argv)
    for path in generate(options.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
