"""Image GC selection: kubelet's thresholds arithmetic and least-recently-used order."""
from __future__ import annotations

from agent.image_gc import GCPolicy, ImageRecord, bytes_to_free, select_images

POLICY = GCPolicy(high_threshold=85, low_threshold=80, min_age=120)


def test_nothing_to_free_below_the_high_mark() -> None:
    assert bytes_to_free(capacity=1000, available=160, policy=POLICY) == 0       # 84% used
    assert bytes_to_free(capacity=1000, available=150, policy=POLICY) == 50      # 85%: down to 80%
    assert bytes_to_free(capacity=1000, available=50, policy=POLICY) == 150
    assert bytes_to_free(capacity=1000, available=0, policy=GCPolicy(100, 80, 0)) == 0   # 100: disabled
    assert bytes_to_free(capacity=0, available=0, policy=POLICY) == 0


def image(name: str, size: int, first_seen: float, last_used: float, protected: bool = False) -> ImageRecord:
    return ImageRecord(f"sha256:{name}", size, (f"r/{name}:1",), first_seen, last_used, protected)


def test_least_recently_used_first_until_enough() -> None:
    images = [image("a", 100, 0, 50), image("b", 100, 0, 10), image("c", 100, 0, 30), image("d", 100, 0, 0)]
    chosen = select_images(images, set(), now=1000, policy=POLICY, wanted=150)
    assert [i.id for i in chosen] == ["sha256:d", "sha256:b"]
    everything = select_images(images, set(), now=1000, policy=POLICY, wanted=10_000)
    assert [i.id for i in everything] == ["sha256:d", "sha256:b", "sha256:c", "sha256:a"]


def test_in_use_young_and_protected_images_are_kept() -> None:
    images = [image("used", 100, 0, 999), image("young", 100, 950, 0), image("pause", 100, 0, 0, protected=True),
              image("old", 100, 0, 0)]
    chosen = select_images(images, {"sha256:used"}, now=1000, policy=POLICY, wanted=10_000)
    assert [i.id for i in chosen] == ["sha256:old"]


def test_ties_broken_by_first_seen() -> None:
    images = [image("later", 10, 20, 0), image("earlier", 10, 10, 0)]
    assert [i.id for i in select_images(images, set(), 1000, POLICY, 15)] == ["sha256:earlier", "sha256:later"]
