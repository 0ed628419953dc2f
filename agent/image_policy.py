"""imagePullPolicy decisions and image reference helpers; pure."""
from __future__ import annotations

from enum import Enum


class PullDecision(Enum):
    PULL = "pull"
    USE_PRESENT = "use-present"
    NEVER_PULL_MISSING = "never-pull-missing"


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none, e.g. only a digest)."""
    name = image.split("@", 1)[0]
    last_segment = name.rsplit("/", 1)[-1]
    return last_segment.split(":", 1)[1] if ":" in last_segment else None


def default_pull_policy(image: str) -> str:
    """Always for `:latest` or no tag (and no digest), IfNotPresent otherwise — the API default."""
    if "@" in image:
        return "IfNotPresent"
    return "Always" if image_tag(image) in (None, "latest") else "IfNotPresent"


def pull_decision(policy: str | None, image: str, present: bool) -> PullDecision:
    policy = policy or default_pull_policy(image)
    if policy == "Always":
        return PullDecision.PULL
    if present:
        return PullDecision.USE_PRESENT
    if policy == "Never":
        return PullDecision.NEVER_PULL_MISSING
    return PullDecision.PULL
