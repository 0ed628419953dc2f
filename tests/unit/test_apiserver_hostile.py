"""Hostile request input: body size, nesting, YAML bombs, encodings, non-object bodies, unknown fields,
names/labels/annotations outside upstream's rules, watch caps. Every refusal is a clean Status."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from apiserver import errors
from apiserver.fieldcheck import unknown_fields
from apiserver.http import body
from apiserver.bounds import MAX_NESTING_DEPTH
from apiserver.http.limits import MAX_REQUEST_BODY_BYTES, WatchLimiter, read_body
from apiserver.kinds.pods import PodStrategy
from apiserver.patch import JSON_PATCH, STRATEGIC_MERGE_PATCH
from apiserver.validation import label_value, qualified_name, validate_object_meta, dns1123_subdomain


def refused(raw: bytes | str, content_type: str = "application/json") -> errors.APIError:
    with pytest.raises(errors.APIError) as caught:
        body.decode(raw.encode() if isinstance(raw, str) else raw, content_type)
    return caught.value


# body size ------------------------------------------------------------------------------------
async def _client(limit: int) -> TestClient:
    async def echo(request: web.Request) -> web.Response:
        try:
            raw = await read_body(request, limit)
        except errors.APIError as exc:
            return web.json_response(exc.status(), status=exc.code)
        return web.json_response({"size": len(raw)})

    app = web.Application()
    app.router.add_post("/", echo)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_oversize_body_is_413_with_upstreams_status_declared_or_streamed():
    client = await _client(1000)
    try:
        ok = await client.post("/", data=b"x" * 1000)
        assert (await ok.json()) == {"size": 1000}
        declared = await client.post("/", data=b"x" * 1001)
        assert declared.status == 413
        assert (await declared.json()) == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                           "message": "Request entity too large: limit is 1000",
                                           "reason": "RequestEntityTooLarge", "code": 413}

        async def chunks():  # chunked: no Content-Length, the limit is enforced while reading
            for _ in range(100):
                yield b"y" * 100
        streamed = await client.post("/", data=chunks())
        assert streamed.status == 413
    finally:
        await client.close()


def test_default_limit_is_kube_apiservers():
    assert MAX_REQUEST_BODY_BYTES == 3 * 1024 * 1024


# nesting ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 5000, 200000])
def test_deep_json_is_a_400_not_a_recursion_error(depth):
    error = refused('{"a":' * depth + "1" + "}" * depth)
    assert error.code == 400 and error.message == "error decoding request body: exceeded max depth"
    assert refused("[" * depth + "]" * depth, JSON_PATCH).code == 400


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 5000, 200000])
def test_deep_yaml_is_a_400(depth):
    flow = refused("a: " + "[" * depth + "]" * depth, "application/yaml")
    assert flow.code == 400 and "exceeded max" in flow.message  # ours, or libyaml's own flow-level limit
    block = refused("".join(f"{' ' * level}k:\n" for level in range(min(depth, 3000))), "application/yaml")
    assert block.code == 400 and "exceeded max" in block.message


def test_nesting_at_the_limit_is_accepted():
    value = body.decode(('{"a":' * MAX_NESTING_DEPTH + "1" + "}" * MAX_NESTING_DEPTH).encode(), "application/json")
    assert isinstance(value, dict)


# YAML ------------------------------------------------------------------------------------------
def test_yaml_alias_bomb_is_refused_quickly():
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 10):
        previous = chr(ord("a") + level - 1)
        bomb.append(f"{chr(ord('a') + level)}: &{chr(ord('a') + level)} [" + ", ".join([f"*{previous}"] * 10) + "]")
    started = time.process_time()
    error = refused("\n".join(bomb), "application/yaml")
    assert error.code == 400 and "excessive aliasing" in error.message
    assert time.process_time() - started < 1


def test_yaml_self_referencing_alias_is_refused():
    assert "contains itself" in refused("a: &a [1, *a]", "application/yaml").message


def test_yaml_few_aliases_and_odd_scalars_become_json():
    value = body.decode(b"metadata:\n  labels: &l {app: web}\n  annotations: *l\n  t: 2024-01-01\n  1: true\n",
                        "application/yaml")
    assert value == {"metadata": {"labels": {"app": "web"}, "annotations": {"app": "web"}, "t": "2024-01-01",
                                  "1": True}}
    json.dumps(value)


@pytest.mark.parametrize("text", ["a: .nan", "a: [.inf]", "a: !!python/object:os.system x", "a: [", "{a: 1"])
def test_yaml_that_json_cannot_hold_or_that_does_not_parse_is_a_400(text):
    assert refused(text, "application/yaml").code == 400


# encodings and shapes --------------------------------------------------------------------------
def test_invalid_utf8_in_strings_becomes_the_replacement_character_as_go():
    assert body.decode(b'{"metadata":{"name":"\xff"}}', "application/json")["metadata"]["name"] == "\ufffd"
    assert refused(b"\xff\xfe{}").code == 400
    assert refused(b"a: \xff", "application/yaml").code == 400


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1', "", "nul"])
def test_json_syntax_errors_are_400(text):
    assert refused(text).code == 400


@pytest.mark.parametrize("text,go_type", [("[1]", "array"), ('"x"', "string"), ("3", "number"), ("true", "bool")])
def test_non_object_bodies_are_400_with_upstreams_message(text, go_type):
    error = refused(text)
    assert error.code == 400 and f"cannot unmarshal {go_type} into Go value of type struct" in error.message
    assert refused(text, STRATEGIC_MERGE_PATCH).code == 400


def test_json_patch_must_be_a_list_of_at_most_10000_operations():
    assert "cannot unmarshal object into Go value of type jsonpatch.Patch" in refused("{}", JSON_PATCH).message
    operations = json.dumps([{"op": "test", "path": "/a", "value": 1}] * 10001)
    error = refused(operations, JSON_PATCH)
    assert error.code == 413 and error.message.endswith("is 10000, got 10001")


def test_unknown_media_type_is_415():
    assert refused("{}", "text/plain").code == 415
    assert refused(b"k8s\x00garbage", "application/vnd.kubernetes.protobuf").code == 415


async def test_large_bodies_are_decoded_off_the_event_loop():
    raw = json.dumps({"data": {f"k{i}": "v" * 100 for i in range(5000)}}).encode()
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)
    task = asyncio.create_task(ticker())
    value = await body.decode_async(raw, "application/json")
    task.cancel()
    assert len(value["data"]) == 5000 and ticks > 1


# unknown fields --------------------------------------------------------------------------------
def test_unknown_fields_are_found_at_any_depth_with_upstreams_paths():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "bogus": 1},
           "spec": {"foo": 1, "containers": [{"name": "c", "image": "i", "env": [{"name": "e", "valu": "x"}],
                                              "livenessProbe": {"httpGet": {"port": 80, "pth": "/"}},
                                              "resources": {"limit": {}}}],
                    "volumes": [{"name": "v", "emptyDir": {}, "hostpath": {}}]}}
    assert unknown_fields("Pod", pod) == ["metadata.bogus", "spec.foo", "spec.containers[0].env[0].valu",
                                          "spec.containers[0].livenessProbe.httpGet.pth",
                                          "spec.containers[0].resources.limit", "spec.volumes[0].hostpath"]
    deployment = {"spec": {"replicas": 1, "strategy": {"rollingUpdate": {"maxSurge": 1, "maxSurg": 1}},
                           "template": {"metadata": {"labels": {}}, "spec": {"containers": [{"nam": "c"}]}}}}
    assert unknown_fields("Deployment", deployment) == ["spec.strategy.rollingUpdate.maxSurg",
                                                        "spec.template.spec.containers[0].nam"]
    assert unknown_fields("ResourceQuota", {"spec": {"hard": {"pods": "1"}, "hrd": {}}}) == ["spec.hrd"]
    assert unknown_fields("Pod", {"spec": {"$setElementOrder/containers": [], "containers": [{"$patch": "delete"}]}}) == []
    deep = {"spec": {"containers": [{"env": [{"valueFrom": {"x": {"y": {}}}}]}]}}
    assert unknown_fields("Pod", deep) == ["spec.containers[0].env[0].valueFrom.x"]


# names, labels, annotations --------------------------------------------------------------------
def test_qualified_names_follow_upstream():
    assert qualified_name("example.com/MyName") == [] and qualified_name("a") == []
    assert qualified_name("/a") == ["prefix part must be non-empty"]
    assert qualified_name("a/b/c")[0].startswith("a qualified name must consist of alphanumeric characters")
    assert qualified_name("example.com/") == ["name part must be non-empty", qualified_name("-")[0]]
    assert qualified_name("x" * 64)[0] == "name part must be no more than 63 characters"
    assert qualified_name("Example.com/a")[0].startswith("prefix part a lowercase RFC 1123 subdomain")
    assert qualified_name(("a" * 63 + ".") * 4 + "a/b")[0] == "prefix part must be no more than 253 characters"
    assert label_value("") == [] and label_value("x" * 64) == ["must be no more than 63 characters"]
    assert label_value("-a")[0].startswith("a valid label must be an empty string or consist of")
    assert dns1123_subdomain("a" * 254)[0] == "must be no more than 253 characters"


def _pod(**meta):
    return {"metadata": {"name": "p", "namespace": "ns", **meta}}


def test_annotations_keys_are_case_insensitive_values_strings_and_total_size_256kib():
    assert validate_object_meta(_pod(annotations={"Example.COM/Key": "v"}), True, dns1123_subdomain) == []
    bad_key = validate_object_meta(_pod(annotations={"a/b/c": "v"}), True, dns1123_subdomain)
    assert [(e.field, e.reason) for e in bad_key] == [("metadata.annotations", "FieldValueInvalid")]
    not_string = validate_object_meta(_pod(annotations={"a": 1}), True, dns1123_subdomain)
    assert [e.field for e in not_string] == ["metadata.annotations[a]"]
    big = validate_object_meta(_pod(annotations={"a": "x" * (256 * 1024)}), True, dns1123_subdomain)
    assert [e.message() for e in big] == ["Too long: may not be more than 262144 bytes"]
    assert validate_object_meta(_pod(annotations={"a": "x" * (256 * 1024 - 1)}), True, dns1123_subdomain) == []


def test_pod_labels_and_names_outside_the_rules_are_422_with_upstreams_messages():
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "Bad_Name", "namespace": "ns", "labels": {"a/b/c": "x" * 64}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    problems = PodStrategy().validate(pod)
    error = errors.invalid_object("", "Pod", "Bad_Name", problems)
    assert error.code == 422
    assert 'metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain' in error.message
    assert 'metadata.labels: Invalid value: "a/b/c": a qualified name must consist of' in error.message
    assert f'metadata.labels: Invalid value: "{"x" * 64}": must be no more than 63 characters' in error.message


def test_objects_nested_past_the_limit_are_refused_by_validation():
    deep: dict = {}
    node = deep
    for _ in range(MAX_NESTING_DEPTH):
        node["x"] = {}
        node = node["x"]
    problems = validate_object_meta({"metadata": {"name": "p"}, "spec": deep}, False, dns1123_subdomain)
    assert [(e.field, e.reason) for e in problems] == [("spec", "FieldValueForbidden")]


# watch cap -------------------------------------------------------------------------------------
def test_watch_limiter_caps_one_client_and_the_total_and_frees_slots():
    limiter = WatchLimiter(per_client=2, total=3)
    with limiter.hold("a"), limiter.hold("a"):
        with pytest.raises(errors.APIError) as caught:
            with limiter.hold("a"):
                pass
        assert caught.value.code == 429 and caught.value.headers == {"Retry-After": "1"}
        assert caught.value.status()["reason"] == "TooManyRequests"
        with limiter.hold("b"):
            with pytest.raises(errors.APIError):
                with limiter.hold("c"):
                    pass
    assert limiter.open_watches == 0
    with limiter.hold("a"):
        assert limiter.open_watches == 1


@pytest.mark.parametrize("operation,field", [({"path": "/a"}, "op"), ({"op": "add", "path": 3}, "path"),
                                             ({"op": "move", "path": "/a"}, "from")])
def test_json_patch_operations_need_string_op_path_and_from(operation, field):
    error = refused(json.dumps([{"op": "test", "path": "/a", "value": 1}, operation]), JSON_PATCH)
    assert error.code == 400 and error.message == f'json patch operation 1: "{field}" must be a string'
    assert "operation 0: cannot unmarshal number" in refused("[1]", JSON_PATCH).message


@pytest.mark.parametrize("spec, detail", [
    (1, "cannot unmarshal number into Go struct field Pod.spec of type v1.PodSpec"),
    ({"containers": True}, "cannot unmarshal bool into Go struct field PodSpec.spec.containers of type []v1.Container"),
    ({"containers": [1]}, "cannot unmarshal number into Go struct field PodSpec.spec.containers of type v1.Container"),
    ({"containers": [{"name": "c", "image": "x", "env": 5}]},
     "cannot unmarshal number into Go struct field Container.spec.containers.env of type []v1.EnvVar"),
    ({"containers": [{"name": "c", "ports": [{"containerPort": 1.5}]}]},
     "cannot unmarshal number 1.5 into Go struct field ContainerPort.spec.containers.ports.containerPort of type "
     "int32"),
    ({"nodeSelector": {"a": 1}}, "cannot unmarshal number into Go struct field PodSpec.spec.nodeSelector of type "
                                 "string"),
])
async def test_fields_of_the_wrong_type_are_a_400_as_upstreams_typed_decoding(spec, detail):
    from apiserver.kinds.pods import PodStrategy
    from apiserver.registry import Registry
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}
    with pytest.raises(errors.APIError) as refused_error:
        await Registry(PodStrategy(), storage=None).create("default", body, dry_run=True)
    assert refused_error.value.code == 400
    assert refused_error.value.message == f'Pod in version "v1" cannot be handled as a Pod: json: {detail}'


@pytest.mark.parametrize("kind, body, detail", [
    ("Deployment", {"spec": {"selector": {"matchLabels": []}}},
     "cannot unmarshal array into Go struct field LabelSelector.spec.selector.matchLabels of type map[string]string"),
    ("Deployment", {"spec": {"replicas": "3"}},
     "cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    ("Service", {"spec": {"ports": [{"port": 80, "targetPort": True}]}},
     "cannot unmarshal bool into Go struct field ServicePort.spec.ports.targetPort of type intstr.IntOrString"),
    ("Service", {"spec": {"externalIPs": "1.2.3.4"}},
     "cannot unmarshal string into Go struct field ServiceSpec.spec.externalIPs of type []string"),
    ("ConfigMap", {"data": {"k": 1}}, "cannot unmarshal number into Go struct field ConfigMap.data of type string"),
    ("Node", {"spec": []}, "cannot unmarshal array into Go struct field Node.spec of type object"),
])
def test_every_kind_checks_its_field_types(kind, body, detail):
    from apiserver.kinds import all_strategies
    from apiserver.registry import Registry
    strategy = next(s for s in all_strategies() if s.info.kind == kind)
    with pytest.raises(errors.APIError) as refused_error:
        Registry(strategy, storage=None)._validate_body({"metadata": {"name": "x"}, **body}, "default")
    assert refused_error.value.code == 400
    assert refused_error.value.message.endswith(f"cannot be handled as a {kind}: json: {detail}")


def test_nulls_are_what_typed_decoding_makes_of_them():
    from apiserver.kinds.pods import PodStrategy
    from apiserver.registry import Registry
    body = {"metadata": {"name": "p", "labels": None}, "status": None,
            "spec": {"containers": [None, {"name": "c", "args": [None], "image": None}], "nodeSelector": {"a": None}}}
    checked = Registry(PodStrategy(), storage=None)._validate_body(body, "default")
    assert "labels" not in checked["metadata"] and "status" not in checked
    assert checked["spec"] == {"containers": [{}, {"name": "c", "args": [""]}], "nodeSelector": {"a": ""}}


@pytest.mark.parametrize("metadata, code", [([], 400), ("x", 400), (True, 400), (1, 400), (None, 422)])
def test_admission_sees_only_decoded_bodies(tmp_path, metadata, code):
    """Quota admission (and every other step before validation) reads the body as upstream's admission
    reads a decoded object: a wrongly typed body is the decoder's 400 before any of them runs, never a crash
    (it was a 500: 'list' object has no attribute 'get', found by tests/security/test_soak.py)."""
    import asyncio
    from apiserver.api import API
    from apiserver.storage.sqlite import SQLiteStorage

    async def scenario() -> errors.APIError:
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        api = API(storage)
        await api.start()
        try:
            await api.create(api.registry("", "resourcequotas"), "default",
                             {"metadata": {"name": "q"}, "spec": {"hard": {"secrets": "5"}}})
            with pytest.raises(errors.APIError) as refused_error:
                await api.create(api.registry("", "secrets"), "default", {"metadata": metadata, "data": {}})
            return refused_error.value
        finally:
            await storage.close()

    refused_error = asyncio.run(scenario())
    assert refused_error.code == code, refused_error.message
    # `metadata: null` decodes into an empty ObjectMeta: the object then has no name (422), as upstream.
    assert ("cannot be handled as a Secret" if code == 400 else "name or generateName is required") \
        in refused_error.message
