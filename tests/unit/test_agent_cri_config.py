"""Pod spec → CRI sandbox and container configs, DNS and $(VAR) expansion."""
from __future__ import annotations

import json

import pytest

from cri.gen import api_pb2

from agent.container_config import (ContainerConfigError, PodContext, container_config, container_hash)
from agent.dns import ResolvConf, parse_resolv_conf, pod_dns
from agent.expansion import expand
from agent.sandbox_config import pod_hostname, sandbox_config


def make_pod(**spec) -> dict:
    containers = spec.pop("containers", [{"name": "web", "image": "busybox", "ports": [{"containerPort": 8080}]}])
    return {"metadata": {"name": "web-1", "namespace": "demo", "uid": "u-1", "labels": {"app": "web"},
                         "annotations": {"note": "x"}},
            "spec": {"containers": containers, "nodeName": "dev-node", **spec}}


HOST = ResolvConf(["192.0.2.53"], ["example.test"], ["ndots:1"])


@pytest.mark.parametrize("text, expected", [
    ("$(A)-$(B)", "1-$(B)"),
    ("$$(A)", "$(A)"),
    ("$$", "$"),
    ("cost $5", "cost $5"),
    ("$(A", "$(A"),
    ("tail$", "tail$"),
    ("$(A)$(A)", "11"),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1"}) == expected


def test_sandbox_config_carries_kubelet_metadata_labels_and_log_directory() -> None:
    config = sandbox_config(make_pod(), attempt=2, node_name="dev-node", dns=HOST, seen="2026-01-01T00:00:00Z")
    assert (config.metadata.name, config.metadata.namespace, config.metadata.uid, config.metadata.attempt) == \
        ("web-1", "demo", "u-1", 2)
    assert config.labels["io.kubernetes.pod.name"] == "web-1"
    assert config.labels["io.kubernetes.pod.namespace"] == "demo"
    assert config.labels["io.kubernetes.pod.uid"] == "u-1"
    assert config.labels["app"] == "web"
    assert config.labels["shipmate.io/node-name"] == "dev-node"
    assert config.annotations["note"] == "x"
    assert config.annotations["kubernetes.io/config.source"] == "api"
    assert config.log_directory == "/var/log/pods/demo_web-1_u-1"
    assert config.hostname == "web-1"
    assert list(config.dns_config.servers) == ["192.0.2.53"]
    assert [(p.container_port, p.protocol, p.host_port) for p in config.port_mappings] == [(8080, api_pb2.TCP, 0)]
    options = config.linux.security_context.namespace_options
    assert (options.network, options.pid, options.ipc) == (api_pb2.POD, api_pb2.CONTAINER, api_pb2.POD)


def test_host_network_pod_uses_node_namespace_and_no_hostname() -> None:
    config = sandbox_config(make_pod(hostNetwork=True, hostPID=True), attempt=0, node_name="n", dns=HOST)
    options = config.linux.security_context.namespace_options
    assert (options.network, options.pid) == (api_pb2.NODE, api_pb2.NODE)
    assert config.hostname == ""


def test_hostname_is_cut_to_63_without_trailing_dash() -> None:
    pod = make_pod()
    pod["metadata"]["name"] = "a" * 62 + "-b"
    assert pod_hostname(pod) == "a" * 62
    assert pod_hostname(make_pod(hostname="custom")) == "custom"


def test_container_config_labels_annotations_log_path_and_env_expansion() -> None:
    container = {"name": "app", "image": "busybox:1.36", "command": ["sh", "-c", "echo $(GREETING) $(MISSING)"],
                 "args": ["$$(GREETING)"], "workingDir": "/tmp",
                 "env": [{"name": "NAME", "value": "world"},
                         {"name": "GREETING", "value": "hello $(NAME)"},
                         {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                         {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                         {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}}],
                 "ports": [{"containerPort": 80}]}
    pod = make_pod(containers=[container], terminationGracePeriodSeconds=7)
    config = container_config(pod, container, restart_count=3, node_name="dev-node",
                              context=PodContext(pod_ips=("10.244.0.5",), host_ips=("192.0.2.2",)))
    assert (config.metadata.name, config.metadata.attempt) == ("app", 3)
    assert config.image.image == "busybox:1.36"
    assert list(config.command) == ["sh", "-c", "echo hello world $(MISSING)"]
    assert list(config.args) == ["$(GREETING)"]
    assert config.working_dir == "/tmp"
    assert [(e.key, e.value) for e in config.envs] == [
        ("NAME", "world"), ("GREETING", "hello world"), ("POD", "web-1"), ("IP", "10.244.0.5"), ("APP", "web")]
    assert config.labels["io.kubernetes.container.name"] == "app"
    assert config.labels["io.kubernetes.pod.uid"] == "u-1"
    assert config.annotations["io.kubernetes.container.restartCount"] == "3"
    assert config.annotations["io.kubernetes.container.hash"] == container_hash(container)
    assert config.annotations["io.kubernetes.pod.terminationGracePeriod"] == "7"
    assert json.loads(config.annotations["io.kubernetes.container.ports"]) == [{"containerPort": 80}]
    assert config.log_path == "app/3.log"
    assert "/proc/kcore" in config.linux.security_context.masked_paths


def test_container_resources_follow_kubelet() -> None:
    from agent.container_config import container_resources
    limited = container_resources({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}})
    assert (limited.cpu_shares, limited.cpu_period, limited.cpu_quota, limited.memory_limit_in_bytes) == \
        (256, 100000, 50000, 64 * 1024 * 1024)
    best_effort = container_resources({})
    assert (best_effort.cpu_shares, best_effort.cpu_quota, best_effort.memory_limit_in_bytes) == (2, 0, 0)
    assert container_resources({"resources": {"limits": {"cpu": "1"}}}).cpu_shares == 1024


def test_container_hash_changes_with_the_spec() -> None:
    assert container_hash({"name": "a", "image": "x"}) != container_hash({"name": "a", "image": "y"})
    assert container_hash({"name": "a", "image": "x"}) == container_hash({"image": "x", "name": "a"})


@pytest.mark.parametrize("container, message", [
    ({"name": "a", "image": "x", "env": [{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     'secret "s" not found'),
    ({"name": "a", "image": "x", "env": [{"name": "S", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}]},
     "unsupported fieldPath: spec.bogus"),
    ({"name": "a", "image": "x", "volumeMounts": [{"name": "v", "mountPath": "/v"}]}, "volumes of container a"),
])
def test_unsupported_container_input_is_a_clear_config_error(container: dict, message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message):
        container_config(make_pod(containers=[container]), container, restart_count=0, node_name="n",
                         context=PodContext())


def test_parse_resolv_conf() -> None:
    conf = parse_resolv_conf("# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8\nsearch a.test b.test\noptions ndots:2 edns0\n")
    assert conf == ResolvConf(["1.1.1.1", "8.8.8.8"], ["a.test", "b.test"], ["ndots:2", "edns0"])


def test_dns_policies() -> None:
    default = pod_dns(make_pod(), HOST)
    assert (default.servers, default.searches) == (["192.0.2.53"], ["example.test"])
    none = pod_dns(make_pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"],
                                                         "options": [{"name": "ndots", "value": "3"}]}), HOST)
    assert (none.servers, none.searches, none.options) == (["9.9.9.9"], [], ["ndots:3"])
    cluster = pod_dns(make_pod(), HOST, cluster_dns=["10.96.0.10"])
    assert cluster.servers == ["10.96.0.10"]
    assert cluster.searches[:3] == ["demo.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert cluster.options == ["ndots:5"]
    merged = pod_dns(make_pod(dnsConfig={"options": [{"name": "ndots", "value": "2"}]}), HOST)
    assert merged.options == ["ndots:2"]


def test_static_pod_sandbox_keeps_the_time_its_file_was_seen():
    pod = make_pod()
    pod["metadata"]["annotations"].update({"kubernetes.io/config.source": "file",
                                           "kubernetes.io/config.seen": "2026-01-01T00:00:00Z"})
    config = sandbox_config(pod, attempt=0, node_name="dev-node", dns=HOST, seen="2026-02-02T00:00:00Z")
    assert config.annotations["kubernetes.io/config.seen"] == "2026-01-01T00:00:00Z"
    assert sandbox_config(make_pod(), attempt=0, node_name="dev-node", dns=HOST,
                          seen="2026-02-02T00:00:00Z").annotations["kubernetes.io/config.seen"] == "2026-02-02T00:00:00Z"
