"""A namespace's Pod Security policy: the `pod-security.kubernetes.io/*` labels over the server default.

Pure, as upstream's api.PolicyToEvaluate: a bad enforce level or version evaluates as `restricted` /
`latest` (fail closed), a bad audit or warn level as `privileged` (fail open), and every bad value is a
FieldError `metadata.labels[<label>]: Invalid value: "x": must be ...` (namespace writes refuse them)."""
from __future__ import annotations

import re
from dataclasses import dataclass, replace

from apiserver.errors import FieldError, invalid
from apiserver.podsecurity.policy import LATEST, LEVELS, PRIVILEGED, RESTRICTED, LevelVersion, Version

LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "audit", "warn")
_VERSION = re.compile(r"^v1\.(0|[1-9][0-9]*)$")


@dataclass(frozen=True)
class Policy:
    enforce: LevelVersion = LevelVersion(PRIVILEGED)
    audit: LevelVersion = LevelVersion(PRIVILEGED)
    warn: LevelVersion = LevelVersion(PRIVILEGED)

    def fully_privileged(self) -> bool:
        return all(lv.level == PRIVILEGED for lv in (self.enforce, self.audit, self.warn))


PRIVILEGED_POLICY = Policy()


def parse_level(text: str) -> str | None:
    return text if text in LEVELS else None


def parse_version(text: str) -> Version | None:
    if text == "latest":
        return LATEST
    match = _VERSION.match(text)
    return Version(int(match.group(1))) if match else None


def policy_from_labels(labels: dict[str, str] | None, default: Policy = PRIVILEGED_POLICY) -> tuple[Policy, list[FieldError]]:
    policy, problems = default, []
    labels = labels if isinstance(labels, dict) else {}
    for mode in MODES:
        current: LevelVersion = getattr(policy, mode)
        level_label, version_label = LABEL_PREFIX + mode, f"{LABEL_PREFIX}{mode}-version"
        if level_label in labels:
            text = str(labels[level_label])
            level = parse_level(text)
            if level is None:
                problems.append(invalid(f"metadata.labels[{level_label}]", text,
                                        "must be one of " + ", ".join(LEVELS)))
                level = RESTRICTED if mode == "enforce" else PRIVILEGED
            current = replace(current, level=level)
        if version_label in labels:
            text = str(labels[version_label])
            version = parse_version(text)
            if version is None:
                problems.append(invalid(f"metadata.labels[{version_label}]", text, 'must be "latest" or "v1.x"'))
                version = LATEST
            current = replace(current, version=version)
        policy = replace(policy, **{mode: current})
    return policy, problems


def parse_default(text: str) -> Policy:
    """`--pod-security-default enforce=baseline,enforce-version=v1.30,warn=restricted` → the cluster default
    (unnamed modes stay privileged:latest, as upstream without an admission configuration)."""
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, sep, value = item.partition("=")
        mode = key.strip().removesuffix("-version")
        if not sep or mode not in MODES:
            raise ValueError(f"{item!r}: expected enforce|audit|warn[-version]=VALUE")
        labels[LABEL_PREFIX + key.strip()] = value.strip()
    policy, problems = policy_from_labels(labels)
    if problems:
        raise ValueError("; ".join(f"{p.field.removeprefix('metadata.labels[').rstrip(']')}: {p.message()}"
                                   for p in problems))
    return policy
