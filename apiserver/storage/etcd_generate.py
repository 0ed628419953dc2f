"""Generate the Python stubs in apiserver/storage/etcd_gen/ from the protos in etcd_proto/.

Run `python -m apiserver.storage.etcd_generate` after changing a .proto and commit the result;
tests/unit/test_etcd_generate.py fails while the committed stubs are stale.
"""
from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

from cri.generate import _SIBLING_IMPORT

PROTO_DIR = Path(__file__).parent / "etcd_proto"
GEN_DIR = Path(__file__).parent / "etcd_gen"
GEN_PACKAGE = "apiserver.storage.etcd_gen"
INIT_TEXT = '"""Generated from apiserver/storage/etcd_proto/ by `python -m apiserver.storage.etcd_generate`."""\n'


def generate(out_dir: Path = GEN_DIR) -> list[Path]:
    """Write the stubs into out_dir and return the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*_pb2*.py*"):
        stale.unlink()
    sources = sorted(PROTO_DIR.glob("*.proto"))
    args = ["grpc_tools.protoc", f"--proto_path={PROTO_DIR}", f"--python_out={out_dir}", f"--pyi_out={out_dir}",
            f"--grpc_python_out={out_dir}", *(str(path) for path in sources)]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {', '.join(p.name for p in sources)}")
    local_modules = {f"{path.stem}_pb2" for path in sources}
    init = out_dir / "__init__.py"
    init.write_text(INIT_TEXT)
    written = [init]
    for path in sorted(out_dir.glob("*_pb2*.py*")):
        text = path.read_text()
        if path.name.endswith("_pb2_grpc.py") and "Stub" not in text:
            path.unlink()  # protoc writes an empty module for protos without a service
            continue
        fixed = _SIBLING_IMPORT.sub(lambda m: (f"from {GEN_PACKAGE} import {m.group(1)} as {m.group(2)}"
                                               if m.group(1) in local_modules else m.group(0)), text)
        if fixed != text:
            path.write_text(fixed)
        written.append(path)
    return written


if __name__ == "__main__":
    for written_path in generate():
        print(written_path)
    sys.exit(0)
