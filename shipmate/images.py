"""Image references as the API defaults them: the tag of a reference and the default imagePullPolicy."""
from __future__ import annotations


def image_tag(image: str) -> str | None:
    """The tag of an image reference (None when it has none, e.g. `name` or `name@sha256:…`)."""
    name = image.split("@", 1)[0]
    last_segment = name.rsplit("/", 1)[-1]
    return last_segment.split(":", 1)[1] if ":" in last_segment else None


def default_pull_policy(image: str) -> str:
    """SetDefaults_Container: Always when the tag is `latest` — stated, or implied by a reference with
    neither tag nor digest — IfNotPresent otherwise (so `name:latest@sha256:…` is Always)."""
    tag = image_tag(image)
    if tag is None and "@" not in image:
        tag = "latest"
    return "Always" if tag == "latest" else "IfNotPresent"
