"""imagePullPolicy decisions and image reference helpers; pure."""
from __future__ import annotations

from enum import Enum

from shipmate.images import default_pull_policy


class PullDecision(Enum):
    PULL = "pull"
    USE_PRESENT = "use-present"
    NEVER_PULL_MISSING = "never-pull-missing"


def pull_decision(policy: str | None, image: str, present: bool) -> PullDecision:
    policy = policy or default_pull_policy(image)
    if policy == "Always":
        return PullDecision.PULL
    if present:
        return PullDecision.USE_PRESENT
    if policy == "Never":
        return PullDecision.NEVER_PULL_MISSING
    return PullDecision.PULL
