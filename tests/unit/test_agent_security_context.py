"""The pod's securityContext in the CRI configs the agent builds (seccomp, no_new_privs,
capabilities, users and groups) and kubelet's runAsNonRoot check before a start."""
from __future__ import annotations

import pytest

from cri.gen import api_pb2

from agent.container_config import (ContainerConfigError, ImageUser, PodContext, container_config,
                                    verify_run_as_non_root)
from agent.dns import ResolvConf
from agent.sandbox_config import sandbox_config

PROFILE = api_pb2.SecurityProfile


def pod_with(container: dict, **pod_security) -> dict:
    return {"metadata": {"name": "web", "namespace": "demo", "uid": "u-1"},
            "spec": {"containers": [container], "securityContext": pod_security}}


def security(pod: dict, seccomp_root: str = "/root-dir/seccomp") -> api_pb2.LinuxContainerSecurityContext:
    container = pod["spec"]["containers"][0]
    config = container_config(pod, container, restart_count=0, node_name="n", context=PodContext(),
                              seccomp_root=seccomp_root)
    return config.linux.security_context


def test_image_user_as_kubelet_reads_it() -> None:
    assert ImageUser.of(api_pb2.Image(uid={"value": 1000})) == ImageUser(uid=1000)
    assert ImageUser.of(api_pb2.Image(uid={"value": 0})) == ImageUser(uid=0)
    assert ImageUser.of(api_pb2.Image(username="nobody")) == ImageUser(username="nobody")
    # No USER in the image (busybox), or an image the runtime does not know: root.
    assert ImageUser.of(api_pb2.Image()) == ImageUser(uid=0)
    assert ImageUser.of(None) == ImageUser(uid=0)


def test_run_as_non_root_refuses_an_image_without_user() -> None:
    container = {"name": "app", "image": "busybox"}
    pod = pod_with(container, runAsNonRoot=True)
    with pytest.raises(ContainerConfigError) as refused:
        verify_run_as_non_root(pod, container, ImageUser.of(api_pb2.Image()))
    assert str(refused.value) == ('container has runAsNonRoot and image will run as root '
                                  '(pod: "web_demo(u-1)", container: app)')
    verify_run_as_non_root(pod, container, ImageUser.of(api_pb2.Image(uid={"value": 65534})))
    container["securityContext"] = {"runAsUser": 1000}          # the container's user wins
    verify_run_as_non_root(pod, container, ImageUser(uid=0))
    container["securityContext"] = {"runAsNonRoot": False}
    verify_run_as_non_root(pod, container, ImageUser(uid=0))


@pytest.mark.parametrize("profile, expected", [
    (None, (PROFILE.Unconfined, "")),
    ({"type": "Unconfined"}, (PROFILE.Unconfined, "")),
    ({"type": "RuntimeDefault"}, (PROFILE.RuntimeDefault, "")),
    ({"type": "Localhost", "localhostProfile": "profiles/audit.json"},
     (PROFILE.Localhost, "/root-dir/seccomp/profiles/audit.json")),
])
def test_seccomp_profiles(profile, expected) -> None:
    container = {"name": "app", "image": "x"}
    if profile:
        container["securityContext"] = {"seccompProfile": profile}
    seccomp = security(pod_with(container)).seccomp
    assert (seccomp.profile_type, seccomp.localhost_ref) == expected


@pytest.mark.parametrize("name", ["/etc/evil.json", "../../etc/evil.json", ""])
def test_localhost_profile_must_stay_below_the_seccomp_root(name: str) -> None:
    container = {"name": "app", "image": "x",
                 "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": name}}}
    with pytest.raises(ContainerConfigError, match="descending path"):
        security(pod_with(container))


def test_pod_seccomp_applies_to_containers_and_sandbox_unless_a_container_overrides() -> None:
    plain = {"name": "app", "image": "x"}
    pod = pod_with(plain, seccompProfile={"type": "RuntimeDefault"})
    assert security(pod).seccomp.profile_type == PROFILE.RuntimeDefault
    sandbox = sandbox_config(pod, attempt=0, node_name="n", dns=ResolvConf())
    assert sandbox.linux.security_context.seccomp.profile_type == PROFILE.RuntimeDefault
    plain["securityContext"] = {"seccompProfile": {"type": "Unconfined"}}
    assert security(pod).seccomp.profile_type == PROFILE.Unconfined
    unset = sandbox_config(pod_with({"name": "app", "image": "x"}), attempt=0, node_name="n", dns=ResolvConf())
    assert unset.linux.security_context.seccomp.profile_type == PROFILE.Unconfined


def test_restricted_container() -> None:
    container = {"name": "app", "image": "x", "securityContext": {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}
    result = security(pod_with(container, runAsUser=1000, runAsGroup=3000, fsGroup=2000, supplementalGroups=[4000]))
    assert result.no_new_privs and result.readonly_rootfs and not result.privileged
    assert list(result.capabilities.drop_capabilities) == ["ALL"]
    assert list(result.capabilities.add_capabilities) == ["NET_BIND_SERVICE"]
    assert (result.run_as_user.value, result.run_as_group.value) == (1000, 3000)
    assert list(result.supplemental_groups) == [2000, 4000]


def test_no_new_privs_only_when_escalation_is_explicitly_refused() -> None:
    assert not security(pod_with({"name": "app", "image": "x"})).no_new_privs
    allowed = {"name": "app", "image": "x", "securityContext": {"allowPrivilegeEscalation": True}}
    assert not security(pod_with(allowed)).no_new_privs
