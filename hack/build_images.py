#!/usr/bin/env python3
"""Build shipmate's offline OCI images from busybox-static and push them to the local registry.

Every layer is built deterministically (sorted entries, fixed mtimes, owner root, gzip without a
timestamp), so building twice gives byte-identical blobs and the same manifest digest; a push of
an image whose manifest the registry already holds is skipped.

    python3 hack/build_images.py [--registry 127.0.0.1:5000] [--out _output/images] [--no-push]

Tests build further images with `build_image(name, files, config)` and `push_image(...)`.
"""
from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_REGISTRY = "127.0.0.1:5000"
DEFAULT_OUT = REPO_ROOT / "_output" / "images"
PAUSE_SOURCE = REPO_ROOT / "images" / "pause" / "pause.c"
PAUSE_BINARY = REPO_ROOT / "_output" / "pause"
BUSYBOX = Path("/bin/busybox")
PAUSE_IMAGE = "shipmate/pause:1.0"
BUSYBOX_IMAGE = "library/busybox:latest"

# Fixed timestamp for every file and for the image's `created`: identical input, identical digest.
EPOCH = 0
CREATED = "1970-01-01T00:00:00Z"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

# platform.machine() → (GOARCH, variant) as OCI image configs spell them.
_ARCHITECTURES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""), "arm64": ("arm64", ""),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"),
    "i686": ("386", ""), "i386": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclasses.dataclass(frozen=True)
class Entry:
    """One filesystem entry of a layer. `path` is absolute inside the image."""
    path: str
    kind: str = "file"          # file | dir | symlink | hardlink
    mode: int = 0o644
    content: bytes = b""
    target: str = ""            # symlink target, or the (absolute) path a hardlink points at
    uid: int = 0
    gid: int = 0

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"image path must be absolute: {self.path!r}")
        if self.kind not in ("file", "dir", "symlink", "hardlink"):
            raise ValueError(f"unknown entry kind {self.kind!r} for {self.path}")


def file(path: str, content: bytes | str, mode: int = 0o644) -> Entry:
    data = content.encode() if isinstance(content, str) else content
    return Entry(path, "file", mode, data)


def host_file(path: str, source: Path, mode: int = 0o755) -> Entry:
    return Entry(path, "file", mode, Path(source).read_bytes())


def directory(path: str, mode: int = 0o755) -> Entry:
    return Entry(path, "dir", mode)


def symlink(path: str, target: str) -> Entry:
    return Entry(path, "symlink", 0o777, target=target)


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """The runtime part of an OCI image config (`config` in the config blob)."""
    entrypoint: list[str] | None = None
    cmd: list[str] | None = None
    env: list[str] = dataclasses.field(default_factory=lambda: [f"PATH={DEFAULT_PATH}"])
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    exposed_ports: list[str] = dataclasses.field(default_factory=list)

    def to_oci(self) -> dict:
        out: dict = {"Env": list(self.env)}
        if self.entrypoint is not None:
            out["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            out["Cmd"] = list(self.cmd)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.user:
            out["User"] = self.user
        if self.labels:
            out["Labels"] = dict(sorted(self.labels.items()))
        if self.exposed_ports:
            out["ExposedPorts"] = {port: {} for port in sorted(self.exposed_ports)}
        return out


@dataclasses.dataclass(frozen=True)
class BuiltImage:
    name: str                   # repository:tag relative to the registry, e.g. "library/busybox:latest"
    layout_dir: Path            # OCI image layout holding exactly this image
    manifest_digest: str

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


def host_platform() -> tuple[str, str]:
    machine = platform.machine()
    if machine not in _ARCHITECTURES:
        raise RuntimeError(f"unsupported host architecture {machine!r}")
    return _ARCHITECTURES[machine]


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def layer_tar(files: list[Entry]) -> bytes:
    """An uncompressed, reproducible tar of `files`; missing parent directories are added (0755)."""
    by_path: dict[str, Entry] = {}
    for entry in files:
        if entry.path in by_path:
            raise ValueError(f"duplicate image path {entry.path}")
        by_path[entry.path] = entry
    for entry in list(by_path.values()):
        for parent in _parents(entry.path):
            by_path.setdefault(parent, directory(parent))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(by_path):
            entry = by_path[path]
            info = tarfile.TarInfo(path.lstrip("/"))
            info.mtime, info.mode, info.uid, info.gid = EPOCH, entry.mode, entry.uid, entry.gid
            info.uname = info.gname = ""
            if entry.kind == "file":
                info.size = len(entry.content)
                tar.addfile(info, io.BytesIO(entry.content))
                continue
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
            elif entry.kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, entry.target
            else:
                if entry.target not in by_path or by_path[entry.target].kind != "file":
                    raise ValueError(f"hardlink {entry.path} points at {entry.target}, not a file in the layer")
                info.type, info.linkname = tarfile.LNKTYPE, entry.target.lstrip("/")
            tar.addfile(info)
    return buffer.getvalue()


def _gzip(data: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(data)
    return out.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(obj: dict) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _write_blob(layout: Path, data: bytes) -> str:
    digest = _digest(data)
    path = layout / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def build_image(name: str, files: list[Entry], config: ImageConfig, out_dir: Path = DEFAULT_OUT) -> BuiltImage:
    """Write a one-layer OCI image layout for `name` ("repo/path:tag") under `out_dir`."""
    if ":" not in name.rsplit("/", 1)[-1]:
        raise ValueError(f"image name needs a tag: {name!r}")
    architecture, variant = host_platform()
    layout = Path(out_dir) / name.replace("/", "_").replace(":", "_")
    if layout.exists():
        shutil.rmtree(layout)
    layout.mkdir(parents=True)

    tar = layer_tar(files)
    layer = _gzip(tar)
    layer_digest = _write_blob(layout, layer)
    image_config = {
        "created": CREATED,
        "architecture": architecture,
        "os": "linux",
        "config": config.to_oci(),
        "rootfs": {"type": "layers", "diff_ids": [_digest(tar)]},
        "history": [{"created": CREATED, "created_by": "shipmate hack/build_images.py"}],
    }
    if variant:
        image_config["variant"] = variant
    config_bytes = _canonical_json(image_config)
    config_digest = _write_blob(layout, config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [{"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": len(layer)}],
    }
    manifest_bytes = _canonical_json(manifest)
    manifest_digest = _write_blob(layout, manifest_bytes)
    tag = name.rsplit(":", 1)[1]
    index = {
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST, "digest": manifest_digest, "size": len(manifest_bytes),
            "annotations": {REF_NAME_ANNOTATION: tag},
        }],
    }
    (layout / "index.json").write_bytes(_canonical_json(index))
    (layout / "oci-layout").write_bytes(_canonical_json({"imageLayoutVersion": "1.0.0"}))
    return BuiltImage(name, layout, manifest_digest)


def registry_digest(registry: str, image: BuiltImage) -> str | None:
    """The digest the registry holds for the image's tag, or None when it has none."""
    request = urllib.request.Request(
        f"http://{registry}/v2/{image.repository}/manifests/{image.tag}",
        method="HEAD", headers={"Accept": MEDIA_MANIFEST})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers.get("Docker-Content-Digest")
    except urllib.error.HTTPError as error:
        if error.code == 404:
            return None
        raise


def push_image(image: BuiltImage, registry: str = DEFAULT_REGISTRY) -> bool:
    """Push with skopeo unless the registry already has this exact manifest. True when pushed."""
    if registry_digest(registry, image) == image.manifest_digest:
        return False
    command = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false",
               f"oci:{image.layout_dir}:{image.tag}", f"docker://{registry}/{image.name}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    pushed = registry_digest(registry, image)
    if pushed != image.manifest_digest:
        raise RuntimeError(f"registry holds {pushed} for {image.name}, expected {image.manifest_digest}")
    return True


def build_pause_binary(source: Path = PAUSE_SOURCE, output: Path = PAUSE_BINARY) -> Path:
    """Compile images/pause/pause.c statically (glibc's libc.a), only when the source is newer."""
    if output.exists() and output.stat().st_mtime >= source.stat().st_mtime:
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_suffix(".tmp")
    subprocess.run(["gcc", "-static", "-Os", "-Wall", "-Wextra", "-Werror", "-s",
                    "-o", str(temporary), str(source)], check=True)
    os.replace(temporary, output)
    return output


def busybox_applets(busybox: Path = BUSYBOX) -> list[str]:
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return sorted({name for name in result.stdout.split() if name and "/" not in name})


def base_files() -> list[Entry]:
    """What every busybox-based image holds: the shell and applets in /bin, users, /tmp."""
    entries = [
        host_file("/bin/busybox", BUSYBOX, 0o755),
        file("/etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                            "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
        file("/etc/group", "root:x:0:\nnobody:x:65534:\n"),
        directory("/root", 0o700),
        directory("/tmp", 0o1777),
        directory("/var"),
        directory("/usr/bin"),
        directory("/sbin"),
    ]
    entries += [symlink(f"/bin/{applet}", "busybox") for applet in busybox_applets() if applet != "busybox"]
    return entries


def build_default_images(out_dir: Path = DEFAULT_OUT) -> list[BuiltImage]:
    pause = build_pause_binary()
    return [
        build_image(PAUSE_IMAGE, [host_file("/pause", pause, 0o755)],
                    ImageConfig(entrypoint=["/pause"], env=[]), out_dir),
        build_image(BUSYBOX_IMAGE, base_files(), ImageConfig(cmd=["sh"]), out_dir),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-push", action="store_true", help="only write the OCI layouts")
    args = parser.parse_args(argv)
    for image in build_default_images(args.out):
        state = "built"
        if not args.no_push:
            state = "pushed" if push_image(image, args.registry) else "up to date"
        print(f"{args.registry}/{image.name} {image.manifest_digest} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
