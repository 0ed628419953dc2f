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
        build_image(CLUSTER_DNS_IMAGE, base_files() + python_files() + module_files(CLUSTER_DNS_MODULE),
                    ImageConfig(entrypoint=["python3", "-m", CLUSTER_DNS_MODULE],
                                env=[f"PATH={DEFAULT_PATH}", f"PYTHONPATH={MODULES_DIR}", "PYTHONDONTWRITEBYTECODE=1"],
                                exposed_ports=["53/udp", "53/tcp", "9153/tcp"]), out_dir),
    ]


# The cluster DNS addon's image (shipmate.addons runs it as kube-system/coredns): Debian's Python, and the
# modules `python -m agent.cluster_dns.pod` imports from this repo plus the third-party packages they come from
# (whole, from the venv this script runs in: same CPython ABI as Debian's 3.11), under MODULES_DIR.
CLUSTER_DNS_IMAGE = "shipmate/cluster-dns:1.0"
CLUSTER_DNS_MODULE = "agent.cluster_dns.pod"
MODULES_DIR = "/opt/shipmate/lib"
_CLOSURE_SCRIPT = """
import importlib, json, os, sys, sysconfig
importlib.import_module(sys.argv[1])
repo, stdlib = os.path.realpath(sys.argv[2]), os.path.realpath(sysconfig.get_paths()["stdlib"])
site = [os.path.realpath(p) for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)]
files = set()
for module in list(sys.modules.values()):
    path = os.path.realpath(getattr(module, "__file__", None) or "")
    if not os.path.isfile(path) or path.startswith(stdlib + os.sep):
        continue
    if path.startswith(repo + os.sep):
        files.add((repo, os.path.relpath(path, repo)))
        continue
    for root in site:
        if path.startswith(root + os.sep):
            top = os.path.relpath(path, root).split(os.sep)[0]
            if top.endswith((".py", ".so")):
                files.add((root, top))
            else:
                for folder, dirs, names in os.walk(os.path.join(root, top)):
                    dirs[:] = [d for d in dirs if d != "__pycache__"]
                    files.update((root, os.path.relpath(os.path.join(folder, n), root)) for n in names
                                 if n.endswith((".py", ".so")))
            break
print(json.dumps(sorted(files)))
"""


def module_files(module: str) -> list[Entry]:
    """Every non-stdlib file `import module` loads (repo files one by one, third-party packages whole), under
    MODULES_DIR, and the shared libraries their extensions need."""
    image_python = PYTHON.resolve().name.removeprefix("python")
    if image_python != f"{sys.version_info.major}.{sys.version_info.minor}":
        raise SystemExit(f"build_images.py runs on Python {sys.version_info.major}.{sys.version_info.minor} but the "
                         f"image's is {PYTHON} ({image_python}): its compiled packages would not load there")
    output = subprocess.run([sys.executable, "-c", _CLOSURE_SCRIPT, module, str(REPO_ROOT)], cwd=REPO_ROOT,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
                            capture_output=True, text=True, check=True).stdout
    entries, extensions = [], []
    for root, relative in json.loads(output):
        source = Path(root) / relative
        entries.append(host_file(f"{MODULES_DIR}/{relative}", source, 0o644))
        if source.suffix == ".so":
            extensions.append(source)
    have = {entry.path for entry in python_files()}
    entries += [host_file(str(library), library.resolve(), 0o755)
                for library in shared_libraries(extensions) if str(library) not in have]
    return entries


# Stand-ins for public images that clients' own test suites use (issue 19), under the same names through the
# docker.io mirror: the suites run offline, and an image they cannot pull is not an excuse for a failure.
NGINX_TAGS = ("latest", "1.15.4", "1.10")
NGINX_ROOT = "/usr/share/nginx/html"
# nginx's default page has this heading, and clients' tests look for it (not nginx's text, our own page)
NGINX_INDEX = "<!DOCTYPE html>\n<html><head><title>stand-in</title></head>\n" \
              "<body><h1>Welcome to nginx!</h1><p>A busybox httpd standing in for nginx.</p></body></html>\n"
PYTHON = Path("/usr/bin/python3")
# Parts of the standard library a server in a test pod never imports (the image stays small).
PYTHON_SKIPPED = {"test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "pydoc_data", "__pycache__",
                  "site-packages", "dist-packages", "config-3.11-x86_64-linux-gnu"}


def shared_libraries(binaries: list[Path]) -> list[Path]:
    """Every shared library (and the loader) the binaries load, as `ldd` names them."""
    found: set[Path] = set()
    for binary in binaries:
        output = subprocess.run(["ldd", str(binary)], capture_output=True, text=True).stdout
        for line in output.splitlines():
            words = line.split()
            path = words[2] if "=>" in words and len(words) > 2 else words[0] if words else ""
            if path.startswith("/") and Path(path).exists():
                found.add(Path(path))
    return sorted(found)


def python_files(python: Path = PYTHON) -> list[Entry]:
    """The host's Python (Debian's) with its standard library and the libraries they load, at the same paths:
    `python` runs scripts of the standard library only, which is what test pods ask of the python image."""
    interpreter = python.resolve()
    stdlib = Path(f"/usr/lib/python{interpreter.name.removeprefix('python')}")
    entries = [host_file(str(interpreter), interpreter, 0o755),
               symlink("/usr/bin/python3", interpreter.name), symlink("/usr/bin/python", interpreter.name)]
    extensions = []
    for path in sorted(stdlib.rglob("*")):
        relative = path.relative_to(stdlib)
        if set(relative.parts) & PYTHON_SKIPPED or path.is_dir():
            continue
        if path.is_symlink():
            entries.append(symlink(str(path), os.readlink(path)))
        elif path.is_file():
            entries.append(host_file(str(path), path, path.stat().st_mode & 0o777))
            if path.suffix == ".so":
                extensions.append(path)
    entries += [host_file(str(library), library.resolve(), 0o755)
                for library in shared_libraries([interpreter, *extensions])]
    return entries


def stand_in_images(out_dir: Path = DEFAULT_OUT) -> list[BuiltImage]:
    """nginx: busybox httpd serving NGINX_ROOT on port 80; ubuntu: a shell and the usual tools; python: the host's
    interpreter beside busybox; pause: our pause."""
    nginx = base_files() + [file(f"{NGINX_ROOT}/index.html", NGINX_INDEX)]
    nginx_config = ImageConfig(cmd=["httpd", "-f", "-p", "80", "-h", NGINX_ROOT], exposed_ports=["80/tcp"])
    images = [build_image(f"library/nginx:{tag}", nginx, nginx_config, out_dir) for tag in NGINX_TAGS]
    images.append(build_image("library/ubuntu:latest", base_files(), ImageConfig(cmd=["sh"]), out_dir))
    python = base_files() + python_files()
    images.append(build_image("library/python:latest", python, ImageConfig(cmd=["python3"]), out_dir))
    # registry.k8s.io/pause:3.9, k8s.gcr.io/pause:2.0, gcr.io/google_containers/pause through the default mirrors
    pause = [host_file("/pause", build_pause_binary(), 0o755)]
    images += [build_image(name, pause, ImageConfig(entrypoint=["/pause"], env=[]), out_dir)
               for name in ("pause:3.9", "pause:2.0", "google_containers/pause:latest")]
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default=DEFAULT_REGISTRY)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--no-push", action="store_true", help="only write the OCI layouts")
    parser.add_argument("--stand-ins", action="store_true",
                        help="also the stand-ins of public images clients' test suites use (nginx, ubuntu, python)")
    args = parser.parse_args(argv)
    images = build_default_images(args.out) + (stand_in_images(args.out) if args.stand_ins else [])
    for image in images:
        state = "built"
        if not args.no_push:
            state = "pushed" if push_image(image, args.registry) else "up to date"
        print(f"{args.registry}/{image.name} {image.manifest_digest} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
