"""Patches cannot build more than a bounded object: JSON patch copies are counted as they go (upstream's
accumulated copy limit), every patch type's result is checked against the request size and depth limits,
and strategic-merge lists merge in linear time."""
from __future__ import annotations

import time

import pytest

from apiserver.patch import (JSON_PATCH, LIMITS, MERGE_PATCH, STRATEGIC_MERGE_PATCH, PatchError, apply_patch,
                             json_size, strategic_merge_patch)
from apiserver.registry import is_heavy_patch


def test_json_size_matches_compact_json_and_stops_early():
    import json
    value = {"a": [1, "xy", None, True, {"b": 2.5}], "c": {}}
    assert json_size(value, 10 ** 6) == len(json.dumps(value, separators=(",", ":")))
    huge = ["x" * 1000] * 10 ** 6  # 1 GB as JSON: counted only until it passes the bound
    started = time.process_time()
    assert json_size(huge, 10_000) > 10_000
    assert time.process_time() - started < 0.1


def test_repeated_copies_of_a_subtree_are_refused_once_they_add_more_than_the_copy_limit():
    target = {"metadata": {"name": "x"}, "data": {"a": "x" * 65536}}
    operations = [{"op": "copy", "from": "/data/a", "path": f"/data/b{i}"} for i in range(100)]
    with pytest.raises(PatchError) as caught:
        apply_patch(JSON_PATCH, target, operations)
    assert caught.value.code == 422
    assert "Unable to complete the copy, the accumulated size increase of copy is" in str(caught.value)
    assert f"exceeding the limit {LIMITS.max_copy_bytes}" in str(caught.value)


def test_a_doubling_copy_bomb_is_refused_at_once_without_building_the_value():
    target = {"metadata": {"name": "x"}, "data": {"seed": "x" * 1024}}
    operations = [{"op": "copy", "from": "", "path": f"/k{i}"} for i in range(60)]  # 2^60 KiB if built
    started = time.process_time()
    with pytest.raises(PatchError) as caught:
        apply_patch(JSON_PATCH, target, operations)
    assert caught.value.code == 422
    assert time.process_time() - started < 1


def test_copies_within_the_limit_still_apply():
    result = apply_patch(JSON_PATCH, {"data": {"a": "v"}}, [{"op": "copy", "from": "/data/a", "path": "/data/b"}])
    assert result == {"data": {"a": "v", "b": "v"}}


@pytest.mark.parametrize("patch_type", [MERGE_PATCH, STRATEGIC_MERGE_PATCH])
def test_a_merge_result_larger_than_the_request_limit_is_413(patch_type):
    target = {"metadata": {"name": "x"}, "data": {"a": "x" * (2 * 1024 * 1024)}}
    with pytest.raises(PatchError) as caught:
        apply_patch(patch_type, target, {"data": {"b": "y" * (2 * 1024 * 1024)}})
    assert caught.value.code == 413
    assert str(caught.value) == f"Request entity too large: limit is {LIMITS.max_result_bytes}"


def test_a_json_patch_result_larger_than_the_request_limit_is_413():
    target = {"data": {"a": "x" * (2 * 1024 * 1024)}}
    with pytest.raises(PatchError) as caught:
        apply_patch(JSON_PATCH, target, [{"op": "add", "path": "/data/b", "value": "y" * (2 * 1024 * 1024)}])
    assert caught.value.code == 413


def test_a_json_patch_nesting_deeper_on_every_operation_is_422_not_a_crash():
    step: dict = {}
    node = step
    for _ in range(90):
        node["a"] = {}
        node = node["a"]
    path, operations = "/spec", []
    for _ in range(40):  # 3600 levels: recursion in later steps would crash
        operations.append({"op": "add", "path": path, "value": step})
        path += "/a" * 90
    with pytest.raises(PatchError) as caught:
        apply_patch(JSON_PATCH, {"metadata": {"name": "x"}}, operations)
    assert caught.value.code == 422 and "deeper" in str(caught.value)


def test_strategic_merge_of_long_keyed_lists_is_linear():
    count = 20_000
    target = {"spec": {"containers": [{"name": f"c{i}", "image": "a"} for i in range(count)]}}
    patch = {"spec": {"containers": [{"name": f"c{i}", "image": "b"} for i in range(0, 2 * count, 2)]
                      + [{"name": f"c{i}", "$patch": "delete"} for i in range(1, count, 2)]}}
    started = time.process_time()
    result = strategic_merge_patch(target, patch)
    assert time.process_time() - started < 2  # quadratic: 4·10^8 comparisons
    containers = result["spec"]["containers"]
    assert len(containers) == count and containers[0] == {"name": "c0", "image": "b"}
    assert containers[-1] == {"name": f"c{2 * count - 2}", "image": "b"}


def test_strategic_merge_keeps_duplicate_keys_semantics():
    target = {"spec": {"containers": [{"name": "a", "image": "1"}, {"name": "a", "image": "2"}]}}
    result = strategic_merge_patch(target, {"spec": {"containers": [{"name": "a", "$patch": "delete"},
                                                                     {"name": "a", "image": "3"}]}})
    assert result["spec"]["containers"] == [{"name": "a", "image": "3"}]


def test_big_or_copying_patches_run_off_the_event_loop():
    assert is_heavy_patch(JSON_PATCH, [{"op": "copy", "from": "/a", "path": "/b"}])
    assert is_heavy_patch(JSON_PATCH, [{"op": "add", "path": "/a", "value": 1}] * 65)
    assert not is_heavy_patch(JSON_PATCH, [{"op": "add", "path": "/a", "value": 1}])
    assert is_heavy_patch(MERGE_PATCH, {"data": {"a": "x" * 100_000}})
    assert not is_heavy_patch(STRATEGIC_MERGE_PATCH, {"metadata": {"labels": {"a": "b"}}})
