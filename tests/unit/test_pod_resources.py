"""shipmate.pod_resources against upstream's rules (component-helpers resource.PodRequests / PodLimits), and the
scheduler and ResourceQuota reading the same numbers from it."""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest

from apiserver.quota import pod_compute_usage
from apiserver.scheduler.predicates import Resources, requested_resources
from shipmate.pod_resources import non_zero_requests, pod_limits, pod_requests

Obj = dict[str, Any]
Mi = 1024 * 1024


def c(name: str, requests: dict | None = None, limits: dict | None = None, sidecar: bool = False) -> Obj:
    container: Obj = {"name": name, "image": "busybox"}
    resources = {k: v for k, v in (("requests", requests), ("limits", limits)) if v is not None}
    if resources:
        container["resources"] = resources
    if sidecar:
        container["restartPolicy"] = "Always"
    return container


def pod(containers: list[Obj], init: list[Obj] | None = None, overhead: dict | None = None,
        resources: dict | None = None) -> Obj:
    spec: Obj = {"containers": containers}
    if init is not None:
        spec["initContainers"] = init
    if overhead is not None:
        spec["overhead"] = overhead
    if resources is not None:
        spec["resources"] = resources
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u"}, "spec": spec}


def values(**named: str | int) -> dict[str, Fraction]:
    """cpu in cores as text ("500m"), memory in MiB."""
    out: dict[str, Fraction] = {}
    if "cpu" in named:
        text = str(named["cpu"])
        out["cpu"] = Fraction(int(text[:-1]), 1000) if text.endswith("m") else Fraction(text)
    if "memory" in named:
        out["memory"] = Fraction(int(named["memory"]) * Mi)
    return out


REQUEST_CASES = [
    ("regular containers add up",
     pod([c("a", {"cpu": "1", "memory": "10Mi"}), c("b", {"cpu": "2", "memory": "20Mi"})]),
     values(cpu=3, memory=30)),
    ("an init container larger than the regular ones sets the floor",
     pod([c("a", {"cpu": "1"})], init=[c("i", {"cpu": "2"})]), values(cpu=2)),
    ("a sidecar runs next to the regular containers",
     pod([c("a", {"cpu": "1"})], init=[c("s", {"cpu": "1"}, sidecar=True)]), values(cpu=2)),
    ("sidecars add up with each other",
     pod([c("a", {"cpu": "1"})], init=[c("s1", {"cpu": "1"}, sidecar=True), c("s2", {"cpu": "2"}, sidecar=True),
                                       c("s3", {"cpu": "3"}, sidecar=True)]), values(cpu=7)),
    ("a sidecar started after a big init container does not run next to it",
     pod([c("a", {"cpu": "1"})], init=[c("big", {"cpu": "5"}), c("s", {"cpu": "1"}, sidecar=True)]),
     values(cpu=5)),
    ("a sidecar started before a big init container runs next to it",
     pod([c("a", {"cpu": "1"})], init=[c("s", {"cpu": "1"}, sidecar=True), c("big", {"cpu": "5"})]),
     values(cpu=6)),
    ("regular and restartable init containers interleaved",
     pod([c("a", {"cpu": "1"})], init=[c("i1", {"cpu": "5"}), c("s1", {"cpu": "1"}, sidecar=True),
                                       c("s2", {"cpu": "2"}, sidecar=True), c("i2", {"cpu": "5"}),
                                       c("s3", {"cpu": "3"}, sidecar=True)]),
     values(cpu=8)),      # i2 next to s1+s2: 8 > 1 + 1 + 2 + 3 = 7
    ("each resource takes its own maximum",
     pod([c("a", {"cpu": "1", "memory": "100Mi"})], init=[c("i", {"cpu": "2", "memory": "10Mi"})]),
     values(cpu=2, memory=100)),
    ("a limit stands for a request left unset",
     pod([c("a", limits={"cpu": "500m", "memory": "64Mi"}), c("b", {"cpu": "250m"}, {"cpu": "1"})]),
     values(cpu="750m", memory=64)),
    ("overhead is added to the requests",
     pod([c("a", {"cpu": "1", "memory": "10Mi"})], overhead={"cpu": "250m", "memory": "5Mi"}),
     values(cpu="1250m", memory=15)),
    ("pod-level requests replace the containers' total, overhead still added",
     pod([c("a", {"cpu": "1", "memory": "10Mi"}), c("b", {"cpu": "1"})],
         resources={"requests": {"cpu": "3"}}, overhead={"cpu": "100m"}),
     values(cpu="3100m", memory=10)),
    ("pod-level limits alone: the request defaults to the containers' total, else to the limit",
     pod([c("a", {"memory": "10Mi"})], resources={"limits": {"cpu": "2", "memory": "1024Mi"}}),
     values(cpu=2, memory=10)),
    ("no resources at all", pod([c("a")]), {}),
]


@pytest.mark.parametrize("case, spec, expected", REQUEST_CASES, ids=[case[0] for case in REQUEST_CASES])
def test_pod_requests(case: str, spec: Obj, expected: dict[str, Fraction]) -> None:
    assert pod_requests(spec) == expected


LIMIT_CASES = [
    ("limits follow the same sum and maxima, sidecars included",
     pod([c("a", limits={"cpu": "1", "memory": "100Mi"})],
         init=[c("s", limits={"cpu": "1", "memory": "50Mi"}, sidecar=True), c("big", limits={"memory": "500Mi"})]),
     values(cpu=2, memory=550)),
    ("a request is no limit", pod([c("a", {"cpu": "1"})]), {}),
    ("overhead only raises limits that are set",
     pod([c("a", {"cpu": "1"}, {"memory": "100Mi"})], overhead={"cpu": "250m", "memory": "10Mi"}),
     values(memory=110)),
    ("pod-level limits replace the containers' total",
     pod([c("a", limits={"cpu": "1", "memory": "100Mi"})], resources={"limits": {"memory": "1024Mi"}}),
     values(cpu=1, memory=1024)),
]


@pytest.mark.parametrize("case, spec, expected", LIMIT_CASES, ids=[case[0] for case in LIMIT_CASES])
def test_pod_limits(case: str, spec: Obj, expected: dict[str, Fraction]) -> None:
    assert pod_limits(spec) == expected


def test_overhead_can_be_left_out() -> None:
    spec = pod([c("a", {"cpu": "1"}, {"cpu": "2"})], overhead={"cpu": "1"})
    assert pod_requests(spec, exclude_overhead=True) == values(cpu=1)
    assert pod_limits(spec, exclude_overhead=True) == values(cpu=2)


NON_ZERO_CASES = [
    ("a container without requests counts 100m and 200Mi", pod([c("a"), c("b", {"cpu": "1"})]),
     {"cpu": Fraction(11, 10), "memory": Fraction(400 * Mi)}),
    ("an explicit zero request stays zero", pod([c("a", {"cpu": "0", "memory": "0"})]), values(cpu=0, memory=0)),
    ("init containers and sidecars count the defaults too",
     pod([c("a", {"cpu": "1", "memory": "1Mi"})], init=[c("s", sidecar=True)]),
     {"cpu": Fraction(11, 10), "memory": Fraction(201 * Mi)}),
    ("pod-level requests: only what neither level requests gets the default",
     pod([c("a"), c("b")], resources={"requests": {"memory": "64Mi"}}),
     {"cpu": Fraction(2, 10), "memory": Fraction(64 * Mi)}),
]


@pytest.mark.parametrize("case, spec, expected", NON_ZERO_CASES, ids=[case[0] for case in NON_ZERO_CASES])
def test_non_zero_requests(case: str, spec: Obj, expected: dict[str, Fraction]) -> None:
    assert non_zero_requests(spec) == expected


@pytest.mark.parametrize("spec", [case[1] for case in REQUEST_CASES] + [
    pod([c("a", {"cpu": "333m", "memory": "1.5"})]),      # sub-milli and sub-byte totals round up alike
])
def test_scheduler_and_quota_charge_the_same_requests(spec: Obj) -> None:
    usage = pod_compute_usage(spec)
    assert requested_resources(spec) == Resources(math.ceil(usage["requests.cpu"] * 1000),
                                                  math.ceil(usage["requests.memory"]), 1)
    assert usage["cpu"] == usage["requests.cpu"] and usage["memory"] == usage["requests.memory"]
    limits = pod_limits(spec)
    assert (usage["limits.cpu"], usage["limits.memory"]) == (limits.get("cpu", 0), limits.get("memory", 0))
