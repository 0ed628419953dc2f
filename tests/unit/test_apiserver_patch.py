import pytest

from apiserver.patch import (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH, PatchError, apply_patch, json_patch,
                             merge_patch, strategic_merge_patch)

POD = {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x"]},
       "spec": {"containers": [{"name": "c1", "image": "i1", "env": [{"name": "A", "value": "1"}],
                                "ports": [{"containerPort": 80}]},
                               {"name": "c2", "image": "i2"}]},
       "status": {"conditions": [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}]}}


def test_merge_patch_rfc7386():
    assert merge_patch({"a": "b", "c": {"d": "e", "f": "g"}}, {"a": "z", "c": {"f": None}}) == \
        {"a": "z", "c": {"d": "e"}}
    assert merge_patch({"a": [1, 2]}, {"a": [3]}) == {"a": [3]}
    assert merge_patch(POD, {"metadata": {"labels": {"a": None}}})["metadata"]["labels"] == {"b": "2"}


def test_json_patch_operations():
    doc = {"a": [1, 2], "b": {"c": 1}}
    result = json_patch(doc, [{"op": "add", "path": "/a/-", "value": 3}, {"op": "replace", "path": "/b/c", "value": 2},
                              {"op": "move", "from": "/b/c", "path": "/d"}, {"op": "copy", "from": "/d", "path": "/e"},
                              {"op": "remove", "path": "/a/0"}, {"op": "test", "path": "/e", "value": 2}])
    assert result == {"a": [2, 3], "b": {}, "d": 2, "e": 2}
    assert doc == {"a": [1, 2], "b": {"c": 1}}
    with pytest.raises(PatchError) as failed:
        json_patch(doc, [{"op": "test", "path": "/a/0", "value": 9}])
    assert failed.value.code == 422
    with pytest.raises(PatchError):
        json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert json_patch({"a~b": {"c/d": 1}}, [{"op": "remove", "path": "/a~0b/c~1d"}]) == {"a~b": {}}


def test_strategic_merge_merges_keyed_lists():
    patched = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "c2", "image": "new"},
                                                                  {"name": "c3", "image": "i3"}]}})
    assert [(c["name"], c["image"]) for c in patched["spec"]["containers"]] == \
        [("c1", "i1"), ("c2", "new"), ("c3", "i3")]
    status = strategic_merge_patch(POD, {"status": {"conditions": [{"type": "Ready", "status": "True"}]}})
    assert status["status"]["conditions"] == [{"type": "Ready", "status": "True"},
                                              {"type": "PodScheduled", "status": "True"}]
    env = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "c1", "env": [{"name": "B", "value": "2"}]}]}})
    assert [e["name"] for e in env["spec"]["containers"][0]["env"]] == ["A", "B"]


def test_strategic_merge_directives():
    deleted = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "c1", "$patch": "delete"}]}})
    assert [c["name"] for c in deleted["spec"]["containers"]] == ["c2"]
    replaced = strategic_merge_patch(POD, {"spec": {"containers": [{"name": "only", "image": "x"},
                                                                   {"$patch": "replace"}]}})
    assert replaced["spec"]["containers"] == [{"name": "only", "image": "x"}]
    labels = strategic_merge_patch(POD, {"metadata": {"labels": {"$patch": "replace", "z": "9"}}})
    assert labels["metadata"]["labels"] == {"z": "9"}
    finalizers = strategic_merge_patch(POD, {"metadata": {"finalizers": ["y"]}})
    assert finalizers["metadata"]["finalizers"] == ["x", "y"]
    removed = strategic_merge_patch(POD, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert removed["metadata"]["finalizers"] == []
    ordered = strategic_merge_patch(POD, {"spec": {"$setElementOrder/containers": [{"name": "c1"}]}})
    assert ordered["spec"] == POD["spec"]


def test_apply_patch_dispatch_and_errors():
    assert apply_patch(MERGE_PATCH, {"a": 1}, {"b": 2}) == {"a": 1, "b": 2}
    assert apply_patch(JSON_PATCH, {"a": 1}, [{"op": "remove", "path": "/a"}]) == {}
    assert apply_patch(STRATEGIC_MERGE_PATCH, {"a": 1}, {"a": None}) == {}
    with pytest.raises(PatchError) as unsupported:
        apply_patch("application/apply-patch+yaml", {}, {})
    assert unsupported.value.code == 415
    with pytest.raises(PatchError):
        strategic_merge_patch(POD, {"spec": {"containers": [{"image": "no-name"}]}})
