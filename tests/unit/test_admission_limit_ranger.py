"""LimitRanger admission: a namespace's LimitRanges default pod containers' requests/limits (annotated
`kubernetes.io/limit-ranger`) and hold pods and claims to their min/max/ratio, with upstream's messages."""
from __future__ import annotations

import asyncio

import pytest

from apiserver import errors
from apiserver.admission import limit_rules as rules
from apiserver.api import API
from apiserver.kinds.limitranges import default_limit_item
from apiserver.storage.sqlite import SQLiteStorage


def limit_range(*items: dict) -> dict:
    """A range as stored: its items defaulted by the kind (default ← max, defaultRequest ← default, min)."""
    items = [dict(item) for item in items]
    for item in items:
        default_limit_item(item)
    return {"metadata": {"name": "limits", "namespace": "default"}, "spec": {"limits": items}}


def container(name: str = "c", requests: dict | None = None, limits: dict | None = None, **extra) -> dict:
    resources = {}
    if requests:
        resources["requests"] = requests
    if limits:
        resources["limits"] = limits
    return {"name": name, "image": "busybox", **({"resources": resources} if resources else {}), **extra}


def pod(*containers: dict, init: tuple = (), **spec) -> dict:
    body = {"metadata": {"name": "p"}, "spec": {"containers": list(containers) or [container()], **spec}}
    if init:
        body["spec"]["initContainers"] = list(init)
    return body


CONTAINER_BOUNDS = {"type": "Container", "min": {"cpu": "100m", "memory": "100Mi"},
                    "max": {"cpu": "1", "memory": "1Gi"}, "default": {"cpu": "500m", "memory": "512Mi"},
                    "defaultRequest": {"cpu": "200m", "memory": "128Mi"}}


def test_defaults_fill_what_containers_leave_unset_and_are_named_in_the_annotation():
    target = pod(container("a"), container("b", requests={"cpu": "300m"}, limits={"cpu": "300m"}),
                 init=(container("setup", limits={"memory": "256Mi"}, requests={"memory": "256Mi"}),))
    assert rules.mutate_pod(limit_range(CONTAINER_BOUNDS), target)
    a, b = target["spec"]["containers"]
    assert a["resources"] == {"requests": {"cpu": "200m", "memory": "128Mi"},
                              "limits": {"cpu": "500m", "memory": "512Mi"}}
    assert b["resources"] == {"requests": {"cpu": "300m", "memory": "128Mi"},
                              "limits": {"cpu": "300m", "memory": "512Mi"}}
    assert target["spec"]["initContainers"][0]["resources"] == {
        "requests": {"memory": "256Mi", "cpu": "200m"}, "limits": {"memory": "256Mi", "cpu": "500m"}}
    assert target["metadata"]["annotations"][rules.ANNOTATION] == (
        "LimitRanger plugin set: cpu, memory request for container a; cpu, memory limit for container a; "
        "memory request for container b; memory limit for container b; cpu request for init container setup; "
        "cpu limit for init container setup")
    assert rules.pod_problems(limit_range(CONTAINER_BOUNDS), target) == []


def test_nothing_to_default_leaves_the_pod_unannotated():
    full = pod(container(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"}))
    assert not rules.mutate_pod(limit_range(CONTAINER_BOUNDS), full)
    assert "annotations" not in full["metadata"]
    assert not rules.mutate_pod(limit_range({"type": "Pod", "max": {"cpu": "2"}}), pod())


# (range items, pod, upstream's messages in order: per item every min, then max, then ratio; names sorted)
CASES = [
    ("container over max and under min",
     [CONTAINER_BOUNDS], pod(container(requests={"cpu": "2", "memory": "50Mi"}, limits={"cpu": "2", "memory": "1Gi"})),
     ["minimum memory usage per Container is 100Mi, but request is 50Mi",
      "maximum cpu usage per Container is 1, but limit is 2"]),
    ("limit under min",
     [{"type": "Container", "min": {"memory": "100Mi"}}],
     pod(container(requests={"memory": "200Mi"}, limits={"memory": "50Mi"})),
     ["minimum memory usage per Container is 100Mi, but limit is 50Mi"]),
    ("request over max with the limit within",
     [{"type": "Container", "max": {"cpu": "1"}}], pod(container(requests={"cpu": "1500m"}, limits={"cpu": "1"})),
     ["maximum cpu usage per Container is 1, but request is 1500m"]),
    ("max needs a limit",
     [{"type": "Pod", "max": {"memory": "1Gi"}}], pod(container(requests={"memory": "10Mi"})),
     ["maximum memory usage per Pod is 1Gi.  No limit is specified"]),
    ("min needs a request",
     [{"type": "Pod", "min": {"cpu": "100m"}}], pod(container()),
     ["minimum cpu usage per Pod is 100m.  No request is specified"]),
    ("ratio",
     [{"type": "Container", "maxLimitRequestRatio": {"cpu": "2"}}],
     pod(container(requests={"cpu": "250m"}, limits={"cpu": "1"})),
     ["cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000"]),
    ("ratio without a limit",
     [{"type": "Container", "maxLimitRequestRatio": {"memory": "1500m"}}], pod(container(requests={"memory": "1Gi"})),
     ["memory max limit to request ratio per Container is 1500m, but no limit is specified or limit is 0"]),
    ("ratio without a request",
     [{"type": "Pod", "maxLimitRequestRatio": {"cpu": "3"}}], pod(container()),
     ["cpu max limit to request ratio per Pod is 3, but no request is specified or request is 0"]),
    ("pod totals: containers summed",
     [{"type": "Pod", "max": {"cpu": "1"}}],
     pod(container("a", requests={"cpu": "600m"}, limits={"cpu": "600m"}),
         container("b", requests={"cpu": "600m"}, limits={"cpu": "600m"})),
     ["maximum cpu usage per Pod is 1, but limit is 1200m"]),
    ("pod totals: an init container alone is the peak",
     [{"type": "Pod", "max": {"memory": "1Gi"}}],
     pod(container(requests={"memory": "100Mi"}, limits={"memory": "100Mi"}),
         init=(container("init", requests={"memory": "2Gi"}, limits={"memory": "2Gi"}),)),
     ["maximum memory usage per Pod is 1Gi, but limit is 2Gi"]),
    ("pod totals: sidecars run next to the containers",
     [{"type": "Pod", "max": {"memory": "1Gi"}}],
     pod(container(requests={"memory": "768Mi"}, limits={"memory": "768Mi"}),
         init=(container("side", requests={"memory": "512Mi"}, limits={"memory": "512Mi"}, restartPolicy="Always"),)),
     ["maximum memory usage per Pod is 1Gi, but limit is 1280Mi"]),
    ("pod-level resources replace the sum",
     [{"type": "Pod", "max": {"cpu": "1"}}],
     pod(container(requests={"cpu": "2"}, limits={"cpu": "2"}), resources={"limits": {"cpu": "500m"},
                                                                           "requests": {"cpu": "500m"}}),
     []),
    ("init containers are containers",
     [{"type": "Container", "max": {"cpu": "1"}}],
     pod(container(requests={"cpu": "1"}, limits={"cpu": "1"}),
         init=(container("init", requests={"cpu": "3"}, limits={"cpu": "3"}),)),
     ["maximum cpu usage per Container is 1, but limit is 3"]),
]


@pytest.mark.parametrize("items, target, messages", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_pod_constraints(items, target, messages):
    assert rules.pod_problems(limit_range(*items), target) == messages


def test_claims_are_held_to_min_and_max_of_their_storage_request():
    bounds = limit_range({"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}})

    def claim(size):
        return {"spec": {"resources": {"requests": {"storage": size}} if size else {}}}
    assert rules.claim_problems(bounds, claim("1536Mi")) == []
    assert rules.claim_problems(bounds, claim("5Gi")) == ["maximum storage usage per PersistentVolumeClaim is 2Gi, "
                                                          "but request is 5Gi"]
    assert rules.claim_problems(bounds, claim("500Mi")) == ["minimum storage usage per PersistentVolumeClaim is 1Gi, "
                                                            "but request is 500Mi"]
    assert rules.claim_problems(bounds, claim(None)) == [
        "minimum storage usage per PersistentVolumeClaim is 1Gi.  No request is specified",
        "maximum storage usage per PersistentVolumeClaim is 2Gi.  No request is specified"]
    assert rules.claim_problems(limit_range(CONTAINER_BOUNDS), claim("5Gi")) == []


def test_messages_aggregate_as_go_does():
    assert rules.aggregate(["a"]) == "a"
    assert rules.aggregate(["a", "b"]) == "[a, b]"
    assert rules.aggregate(["a", "a"]) == "a"
    assert rules.aggregate(["a", "b", "a"]) == "[a, b]"


# through the API: the admission chain --------------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    storage = SQLiteStorage(str(tmp_path / "state.db"))
    loop = asyncio.new_event_loop()
    loop.run_until_complete(storage.start())
    server = API(storage)
    loop.run_until_complete(server.start())
    yield server, loop
    loop.run_until_complete(storage.close())
    loop.close()


def create_range(server, loop, *items, name="limits"):
    body = {"metadata": {"name": name}, "spec": {"limits": list(items)}}
    return loop.run_until_complete(server.create(server.registry("", "limitranges"), "default", body))


def test_created_pods_get_defaults_annotation_and_qos_class(api):
    server, loop = api
    create_range(server, loop, {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
                                "defaultRequest": {"cpu": "100m", "memory": "128Mi"}})
    created = loop.run_until_complete(server.create(server.pods, "default", pod()))
    assert created["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m", "memory": "256Mi"},
                                                             "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert created["metadata"]["annotations"] == {
        "kubernetes.io/limit-ranger": "LimitRanger plugin set: cpu, memory request for container c; cpu, memory "
                                      "limit for container c"}
    assert created["status"]["qosClass"] == "Burstable"
    other = loop.run_until_complete(server.create(server.pods, "kube-system", pod()))
    assert not other["spec"]["containers"][0].get("resources") and other["status"]["qosClass"] == "BestEffort"


def test_refusals_are_403_with_the_first_refusing_range(api):
    server, loop = api
    create_range(server, loop, CONTAINER_BOUNDS)
    with pytest.raises(errors.APIError) as refused:
        loop.run_until_complete(server.create(server.pods, "default", pod(
            container(requests={"cpu": "2", "memory": "50Mi"}, limits={"cpu": "2"}))))
    assert refused.value.code == 403 and refused.value.reason == "Forbidden"
    assert refused.value.message == (
        'pods "p" is forbidden: [minimum memory usage per Container is 100Mi, but request is 50Mi, maximum cpu usage '
        'per Container is 1, but limit is 2]')
    generated = {"metadata": {"generateName": "web-"}, "spec": pod(container(limits={"cpu": "5"}))["spec"]}
    with pytest.raises(errors.APIError) as named:
        loop.run_until_complete(server.create(server.pods, "default", generated))
    assert named.value.message.startswith('pods "web-') and named.value.message.endswith(
        'is forbidden: maximum cpu usage per Container is 1, but limit is 5')
    fits = loop.run_until_complete(server.create(server.pods, "default", pod(
        container(requests={"cpu": "500m", "memory": "200Mi"}, limits={"cpu": "1", "memory": "1Gi"}))))
    assert fits["metadata"]["name"] == "p"
    # Pod updates are not checked again (their containers' resources cannot change).
    create_range(server, loop, {"type": "Container", "max": {"cpu": "100m"}}, name="tighter")
    fits["metadata"]["labels"] = {"changed": "yes"}
    updated, _ = loop.run_until_complete(server.update(server.pods, "default", "p", fits))
    assert updated["metadata"]["labels"] == {"changed": "yes"}


def test_claims_are_checked_on_create_and_update(api):
    server, loop = api
    create_range(server, loop, {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "2Gi"}})
    claims = server.registry("", "persistentvolumeclaims")
    # A class that allows expansion (PersistentVolumeClaimResize refuses growing claims of other classes).
    loop.run_until_complete(server.create(server.registry("storage.k8s.io", "storageclasses"), "", {
        "metadata": {"name": "growing"}, "provisioner": "example.com/x", "allowVolumeExpansion": True}))

    def claim(size):
        return {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "growing",
                                                       "resources": {"requests": {"storage": size}}}}
    with pytest.raises(errors.APIError) as big:
        loop.run_until_complete(server.create(claims, "default", claim("5Gi")))
    assert big.value.code == 403 and big.value.message == (
        'persistentvolumeclaims "data" is forbidden: maximum storage usage per PersistentVolumeClaim is 2Gi, but '
        'request is 5Gi')
    created = loop.run_until_complete(server.create(claims, "default", claim("1Gi")))
    created["status"] = {"phase": "Bound"}  # a bound claim may ask for more
    created, _ = loop.run_until_complete(server.update(claims, "default", "data", created, "status"))
    created["spec"]["resources"]["requests"]["storage"] = "3Gi"
    with pytest.raises(errors.APIError) as grown:
        loop.run_until_complete(server.update(claims, "default", "data", created))
    assert grown.value.code == 403 and "but request is 3Gi" in grown.value.message
    created["spec"]["resources"]["requests"]["storage"] = "2Gi"
    grown, _ = loop.run_until_complete(server.update(claims, "default", "data", created))
    assert grown["spec"]["resources"]["requests"]["storage"] == "2Gi"


def test_a_range_the_cache_has_not_seen_is_found_in_storage(api):
    server, loop = api
    plugin = next(p for p in server.admission.plugins if p.name == "LimitRanger")
    assert loop.run_until_complete(plugin.limit_ranges("default")) == []
    create_range(server, loop, {"type": "Container", "max": {"cpu": "1"}})
    ranges = loop.run_until_complete(plugin.limit_ranges("default"))
    assert [r["metadata"]["name"] for r in ranges] == ["limits"]


def test_defaults_come_before_quota_so_a_quota_on_limits_admits_defaulted_pods(api):
    server, loop = api
    quota = {"metadata": {"name": "compute"}, "spec": {"hard": {"limits.cpu": "1", "requests.cpu": "1"}}}
    loop.run_until_complete(server.create(server.registry("", "resourcequotas"), "default", quota))
    with pytest.raises(errors.APIError) as unbounded:
        loop.run_until_complete(server.create(server.pods, "default", pod()))
    assert unbounded.value.message == ('pods "p" is forbidden: failed quota: compute: must specify limits.cpu for: c; '
                                       'requests.cpu for: c')
    create_range(server, loop, {"type": "Container", "default": {"cpu": "400m"}, "defaultRequest": {"cpu": "200m"}})
    created = loop.run_until_complete(server.create(server.pods, "default", pod()))
    assert created["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "400m"}, "requests": {"cpu": "200m"}}
