"""Generate the Python stubs in apiserver/storage/etcd_gen/ from the protos in etcd_proto/.

Run `python -m apiserver.storage.etcd_generate` after changing a .proto and commit the result;
tests/unit/test_etcd_generate.py fails while the committed stubs are stale.
"""
from __future__ import annotations

import sys
from pathlib import Path

from cri.generate import generate_stubs

PROTO_DIR = Path(__file__).parent / "etcd_proto"
GEN_DIR = Path(__file__).parent / "etcd_gen"
GEN_PACKAGE = "apiserver.storage.etcd_gen"
INIT_TEXT = '"""Generated from apiserver/storage/etcd_proto/ by `python -m apiserver.storage.etcd_generate`."""\n'


def generate(out_dir: Path = GEN_DIR) -> list[Path]:
    """Write the etcd stubs into out_dir and return the files written."""
    return generate_stubs(PROTO_DIR, out_dir, GEN_PACKAGE, INIT_TEXT)


if __name__ == "__main__":
    for written_path in generate():
        print(written_path)
    sys.exit(0)
