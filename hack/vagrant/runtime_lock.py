"""Prints the lines of requirements.lock (pins and hashes) that shipmate needs at run time: its
`[project] dependencies` and theirs, markers evaluated for this interpreter, extras left out. The VMs
install exactly these wheels, built on the host (hack/vagrant.sh), and never reach PyPI.

    python hack/vagrant/runtime_lock.py requirements.lock pyproject.toml > runtime.lock
"""
from __future__ import annotations

import re
import sys
import tomllib
from importlib import metadata

from packaging.requirements import Requirement


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_names(direct: list[str]) -> set[str]:
    """The closure of `direct` over the installed distributions' requirements."""
    seen: set[str] = set()
    todo = [Requirement(spec) for spec in direct]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        name = canonical(requirement.name)
        if name in seen:
            continue
        seen.add(name)
        for spec in metadata.requires(requirement.name) or []:
            todo.append(Requirement(spec))
    return seen


def lock_entries(text: str) -> dict[str, str]:
    """name -> its entry (the pin line and its continuation lines of hashes)."""
    entries: dict[str, str] = {}
    current = None
    for line in text.splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current = canonical(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])
            entries[current] = line
        elif current and line.strip().startswith("--hash"):
            entries[current] += "\n" + line
        else:
            current = None
    return entries


def main() -> int:
    lock_path, pyproject_path = sys.argv[1:3]
    with open(pyproject_path, "rb") as file:
        direct = tomllib.load(file)["project"]["dependencies"]
    entries = lock_entries(open(lock_path).read())
    names = runtime_names(direct)
    missing = sorted(names - entries.keys())
    if missing:
        print(f"not in {lock_path}: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in sorted(names):
        print(entries[name])
    return 0


if __name__ == "__main__":
    sys.exit(main())
