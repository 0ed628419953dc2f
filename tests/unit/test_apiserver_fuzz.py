"""Fuzzing (hypothesis) of what a client controls: request body decoding, validation of pods, services and
deployments, and the three patch types. Property: a result or one of our clean errors (APIError, PatchError,
FieldErrors) — never another exception, which the server would answer with a 500.
Bounded for CI: few examples per test, a per-example deadline; the file runs in well under 30 s."""
from __future__ import annotations

import copy
import json
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from apiserver import errors, protobuf
from apiserver.errors import FieldError
from apiserver.http import body
from apiserver.kinds.pods import PodStrategy
from apiserver.kinds.services import ServiceStrategy
from apiserver.kinds.workloads import DeploymentStrategy
from apiserver.patch import JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, PatchError, apply_patch
from apiserver.registry import Registry

set_hypothesis_home_dir(os.path.join(tempfile.gettempdir(), "shipmate-hypothesis"))  # not in the work tree
FUZZ = settings(max_examples=int(os.environ.get("SHIPMATE_FUZZ_EXAMPLES", "100")), deadline=1000, database=None, suppress_health_check=[HealthCheck.too_slow])
scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=12)
keys = st.sampled_from(["name", "image", "ports", "port", "containers", "spec", "metadata", "labels", "env",
                        "$patch", "$retainKeys", "$setElementOrder/containers", "value", "type", "selector",
                        "template", "replicas", "protocol", "targetPort", "a"]) | st.text(max_size=6)
json_values = st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(keys, children, max_size=5), max_leaves=25)


def _decodes_cleanly(raw: bytes, content_type: str) -> None:
    try:
        value = body.decode(raw, content_type)
    except errors.APIError as exc:
        assert exc.code in (400, 413, 415), exc
        return
    json.dumps(value)  # whatever is accepted can be stored and served as JSON


# decoding ---------------------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=300), st.sampled_from(["application/json", "application/yaml", JSON_PATCH,
                                                  MERGE_PATCH, "application/apply-patch+yaml"]))
def test_random_bytes_decode_cleanly(raw, content_type):
    _decodes_cleanly(raw, content_type)


yaml_text = st.lists(st.sampled_from(["a: ", "- ", "&x ", "*x", "[", "]", "{", "}", ": ", ", ", "\n", "  ", "!!set ",
                                      "!!binary ", "!!timestamp ", "2024-01-01", ".nan", "1", "~", "'s'", "\"\\xff\"",
                                      "? ", "---", "!!python/name:os.system"]), max_size=40).map("".join)


@FUZZ
@given(yaml_text)
def test_yaml_like_text_decodes_cleanly(text):
    _decodes_cleanly(text.encode(), "application/yaml")


@FUZZ
@given(json_values)
def test_json_documents_round_trip_or_are_refused(value):
    _decodes_cleanly(json.dumps(value).encode(), "application/json")


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([b"\x0a\x02v1\x12\x09ConfigMap", b"\x0a\x02v1\x12\x07Service",
                                                  b"\x0a\x07apps/v1\x12\x0aDeployment"]))
def test_protobuf_bodies_decode_cleanly(raw, type_meta):
    envelope = b"\x0a" + bytes([len(type_meta)]) + type_meta + b"\x12" + _varint(len(raw)) + raw
    _decodes_cleanly(protobuf.MAGIC + envelope, protobuf.CONTENT_TYPE)
    _decodes_cleanly(protobuf.MAGIC + raw, protobuf.CONTENT_TYPE)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


# validation ------------------------------------------------------------------------------------
def _maybe(strategy):
    return st.one_of(strategy, json_values)


names = st.sampled_from(["web", "a-b", "Bad_Name", "", "x" * 70, "a.b", "-a", "a/b"])
label_maps = st.dictionaries(st.sampled_from(["app", "a/b", "example.com/x", "/x", "a/b/c", "X" * 64, ""]),
                             _maybe(st.sampled_from(["v", "", "-v", "x" * 64, "a_b.c"])), max_size=3)
metadata = st.fixed_dictionaries({"name": _maybe(names)}, optional={
    "labels": _maybe(label_maps), "annotations": _maybe(label_maps), "generateName": _maybe(names),
    "namespace": _maybe(st.just("ns")), "finalizers": _maybe(st.lists(st.text(max_size=5), max_size=2)),
    "ownerReferences": json_values})
ports = st.lists(_maybe(st.fixed_dictionaries({}, optional={
    "name": _maybe(names), "containerPort": _maybe(st.integers(-1, 70000)), "port": _maybe(st.integers(-1, 70000)),
    "protocol": _maybe(st.sampled_from(["TCP", "UDP", "SCTP", "tcp"])), "targetPort": _maybe(st.integers(0, 70000)),
    "nodePort": _maybe(st.integers(0, 40000))})), max_size=3)
containers = st.lists(_maybe(st.fixed_dictionaries({"name": _maybe(names)}, optional={
    "image": _maybe(st.just("busybox")), "ports": _maybe(ports), "env": json_values, "resources": json_values,
    "volumeMounts": json_values, "livenessProbe": json_values, "command": json_values})), max_size=3)
pod_spec = st.fixed_dictionaries({"containers": _maybe(containers)}, optional={
    "initContainers": _maybe(containers), "volumes": json_values, "restartPolicy": _maybe(st.just("Never")),
    "nodeSelector": _maybe(label_maps), "tolerations": json_values, "hostNetwork": json_values,
    "dnsPolicy": json_values, "terminationGracePeriodSeconds": json_values, "affinity": json_values})
pods = st.fixed_dictionaries({"metadata": _maybe(metadata), "spec": _maybe(pod_spec)})
services = st.fixed_dictionaries({"metadata": _maybe(metadata), "spec": _maybe(st.fixed_dictionaries({}, optional={
    "ports": _maybe(ports), "selector": _maybe(label_maps), "type": _maybe(st.sampled_from(
        ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName", "Bogus"])), "clusterIP": _maybe(st.sampled_from(
            ["None", "", "10.96.0.10", "x"])), "externalName": json_values, "sessionAffinity": json_values,
    "ipFamilies": json_values, "externalTrafficPolicy": json_values}))})
deployments = st.fixed_dictionaries({"metadata": _maybe(metadata), "spec": _maybe(st.fixed_dictionaries({}, optional={
    "replicas": _maybe(st.integers(-3, 5)), "selector": _maybe(st.fixed_dictionaries(
        {"matchLabels": _maybe(label_maps)}, optional={"matchExpressions": json_values})),
    "template": _maybe(st.fixed_dictionaries({"metadata": _maybe(metadata), "spec": _maybe(pod_spec)})),
    "strategy": json_values, "minReadySeconds": json_values, "revisionHistoryLimit": json_values}))})


def _validates_cleanly(strategy, obj) -> None:
    registry = Registry(strategy, storage=None)
    try:
        prepared = registry._validate_body(obj, "ns" if strategy.info.namespaced else "")
        strategy.default(prepared)
        strategy.prepare_for_create(prepared)
        problems = strategy.validate(prepared)
        assert all(isinstance(problem, FieldError) for problem in problems)
        errors.invalid_object(strategy.info.group, strategy.info.kind, "x", problems).status()
        update = copy.deepcopy(prepared)
        strategy.prepare_for_update(update, prepared)
        assert all(isinstance(problem, FieldError) for problem in strategy.validate_update(update, prepared))
    except errors.APIError:
        pass


@FUZZ
@given(pods)
def test_pod_validation_never_raises(obj):
    _validates_cleanly(PodStrategy(), obj)


@FUZZ
@given(services)
def test_service_validation_never_raises(obj):
    _validates_cleanly(ServiceStrategy(), obj)


@FUZZ
@given(deployments)
def test_deployment_validation_never_raises(obj):
    _validates_cleanly(DeploymentStrategy(), obj)


# patches ---------------------------------------------------------------------------------------
documents = st.dictionaries(keys, json_values, max_size=5)
pointers = st.lists(st.sampled_from(["a", "spec", "containers", "0", "1", "-", "~1", "~0", "name", "01", ""]),
                    max_size=4).map(lambda parts: "".join("/" + part for part in parts))
operations = st.lists(st.fixed_dictionaries({"op": st.sampled_from(["add", "remove", "replace", "move", "copy",
                                                                    "test", "bogus"]), "path": _maybe(pointers)},
                                            optional={"value": json_values, "from": _maybe(pointers)}), max_size=4)


def _patches_cleanly(patch_type: str, target: dict, patch) -> None:
    before = copy.deepcopy(target)
    try:  # as the server does: decode the body, then apply it
        patch = body.decode(json.dumps(patch).encode(), patch_type)
    except errors.APIError as exc:
        assert exc.code in (400, 413)
        return
    try:
        result = apply_patch(patch_type, target, patch)
    except PatchError as exc:
        assert exc.code in (400, 415, 422)
    else:
        assert isinstance(result, dict)
        json.dumps(result)
    assert target == before  # the stored object is never changed in place


@FUZZ
@given(documents, _maybe(operations))
def test_json_patch_never_raises(target, patch):
    _patches_cleanly(JSON_PATCH, target, patch)


@FUZZ
@given(documents, json_values)
def test_merge_patch_never_raises(target, patch):
    _patches_cleanly(MERGE_PATCH, target, patch)


smp_lists = st.lists(st.fixed_dictionaries({}, optional={"name": _maybe(st.sampled_from(["a", "b"])),
                                                         "$patch": st.sampled_from(["delete", "replace", "merge", "x"]),
                                                         "image": json_values}), max_size=3)
smp_patches = st.fixed_dictionaries({}, optional={
    "spec": _maybe(st.fixed_dictionaries({}, optional={
        "containers": _maybe(smp_lists), "$setElementOrder/containers": json_values,
        "$deleteFromPrimitiveList/finalizers": json_values, "$retainKeys": json_values, "$patch": json_values})),
    "metadata": _maybe(st.fixed_dictionaries({}, optional={"finalizers": json_values, "labels": json_values})),
    "$patch": st.sampled_from(["delete", "replace", "merge", "x"])})


@FUZZ
@given(_maybe(st.fixed_dictionaries({"spec": _maybe(st.fixed_dictionaries({"containers": _maybe(smp_lists)})),
                                     "metadata": json_values})), _maybe(smp_patches))
def test_strategic_merge_patch_never_raises(target, patch):
    _patches_cleanly(STRATEGIC_MERGE_PATCH, target if isinstance(target, dict) else {"a": target}, patch)
