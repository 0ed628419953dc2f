"""Pod Security admission: the policy checks (upstream's names, wording, order, versions), namespace labels,
the admission decisions, and the step wired into the API (warnings, 403, 422)."""
from __future__ import annotations

import asyncio

import pytest

from apiserver import errors, request_warnings
from apiserver.api import API
from apiserver.podsecurity import admission as psa
from apiserver.podsecurity import labels
from apiserver.podsecurity.policy import LevelVersion, Version, checks_for, evaluate, forbidden_detail
from apiserver.storage.sqlite import SQLiteStorage

B, R = LevelVersion("baseline"), LevelVersion("restricted")


def c(name: str = "c", **security) -> dict:
    container = {"name": name, "image": "busybox"}
    if security:
        container["securityContext"] = security
    return container


def spec(*containers: dict, **fields) -> dict:
    return {"containers": list(containers) or [c()], **fields}


def detail(level: LevelVersion, pod_spec: dict, meta: dict | None = None) -> str:
    return forbidden_detail(evaluate(level, meta or {}, pod_spec))


COMPLIANT_RESTRICTED = spec(c(allowPrivilegeEscalation=False, runAsNonRoot=True,
                              capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
                              seccompProfile={"type": "RuntimeDefault"}))


BASELINE_TABLE = [
    ("privileged", spec(c(privileged=True)), 'privileged (container "c" must not set securityContext.privileged=true)'),
    ("privileged false", spec(c(privileged=False)), ""),
    ("two privileged", spec(c("a", privileged=True), c("b", privileged=True)),
     'privileged (containers "a", "b" must not set securityContext.privileged=true)'),
    ("init and ephemeral containers count", {"initContainers": [c("i", privileged=True)], "containers": [c()],
                                             "ephemeralContainers": [c("e", privileged=True)]},
     'privileged (containers "i", "e" must not set securityContext.privileged=true)'),
    ("host namespaces", spec(hostNetwork=True, hostPID=True, hostIPC=True),
     "host namespaces (hostNetwork=true, hostPID=true, hostIPC=true)"),
    ("hostPath", spec(volumes=[{"name": "v", "hostPath": {"path": "/"}}, {"name": "e", "emptyDir": {}}]),
     'hostPath volumes (volume "v")'),
    ("hostPorts", spec(c("a", ) | {"ports": [{"containerPort": 80, "hostPort": 8080}, {"containerPort": 81, "hostPort": 80}]}),
     'hostPort (container "a" uses hostPorts 80, 8080)'),
    ("capabilities beyond baseline", spec(c(capabilities={"add": ["NET_ADMIN", "CHOWN", "SYS_ADMIN"]})),
     'non-default capabilities (container "c" must not include "NET_ADMIN", "SYS_ADMIN" in '
     'securityContext.capabilities.add)'),
    ("baseline capabilities ok", spec(c(capabilities={"add": ["CHOWN", "NET_BIND_SERVICE", "KILL"]})), ""),
    ("hostProcess", spec(c(windowsOptions={"hostProcess": True}), securityContext={"windowsOptions": {"hostProcess": True}}),
     'hostProcess (pod and container "c" must not set securityContext.windowsOptions.hostProcess=true)'),
    ("procMount", spec(c(procMount="Unmasked")),
     'procMount (container "c" must not set securityContext.procMount to "Unmasked")'),
    ("procMount Default", spec(c(procMount="Default")), ""),
    ("seccomp unconfined", spec(c(seccompProfile={"type": "Unconfined"}), securityContext={"seccompProfile": {"type": "Unconfined"}}),
     'seccompProfile (pod and container "c" must not set securityContext.seccompProfile.type to "Unconfined")'),
    ("seccomp unset ok at baseline", spec(c()), ""),
    ("selinux", spec(c(seLinuxOptions={"type": "spc_t", "user": "u", "role": "r"})),
     'seLinuxOptions (container "c" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; '
     'role may not be set)'),
    ("selinux user only", spec(securityContext={"seLinuxOptions": {"user": "u"}}),
     "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: user may not be set)"),
    ("selinux allowed types", spec(c(seLinuxOptions={"type": "container_engine_t"})), ""),
    ("sysctls", spec(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"},
                                                  {"name": "net.ipv4.tcp_rmem", "value": "1"},
                                                  {"name": "net.core.somaxconn", "value": "1"}]}),
     "forbidden sysctls (kernel.msgmax, net.core.somaxconn)"),
    ("apparmor", spec(c(appArmorProfile={"type": "Unconfined"})),
     'forbidden AppArmor profile (container "c" must not set AppArmor profile type to "Unconfined")'),
    ("probe host", spec(c() | {"livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
                              "lifecycle": {"preStop": {"tcpSocket": {"host": "node", "port": 1}}}}),
     'probe or lifecycle host (container "c" uses probe or lifecycle hosts "10.0.0.1", "node")'),
]


@pytest.mark.parametrize("case,pod_spec,expected", BASELINE_TABLE, ids=[row[0] for row in BASELINE_TABLE])
def test_baseline_checks(case, pod_spec, expected):
    assert detail(B, pod_spec) == expected


def test_apparmor_annotations_are_checked_and_quoted_as_upstream():
    meta = {"annotations": {"container.apparmor.security.beta.kubernetes.io/c": "unconfined",
                            "container.apparmor.security.beta.kubernetes.io/d": "localhost/x"}}
    assert detail(B, spec(c(), securityContext={"appArmorProfile": {"type": "Unconfined"}}), meta) == (
        'forbidden AppArmor profiles (pod and annotation must not set AppArmor profile type to "Unconfined", '
        '"container.apparmor.security.beta.kubernetes.io/c="unconfined"")')


def test_violations_come_in_upstream_order_baseline_then_restricted_by_check_id():
    pod = spec(c(privileged=True) | {"ports": [{"containerPort": 80, "hostPort": 80}]},
               volumes=[{"name": "v", "hostPath": {"path": "/"}}], hostNetwork=True)
    assert detail(B, pod) == (
        'host namespaces (hostNetwork=true), hostPath volumes (volume "v"), '
        'hostPort (container "c" uses hostPort 80), privileged (container "c" must not set securityContext.privileged=true)')
    restricted = detail(R, pod)
    assert restricted.startswith('host namespaces (hostNetwork=true), hostPort (container "c" uses hostPort 80), '
                                 'privileged (container "c" must not set securityContext.privileged=true), '
                                 'allowPrivilegeEscalation != false (container "c" must set '
                                 'securityContext.allowPrivilegeEscalation=false), unrestricted capabilities')
    # restrictedVolumes replaces hostPathVolumes at restricted
    assert "hostPath volumes" not in restricted
    assert 'restricted volume types (volume "v" uses restricted volume type "hostPath")' in restricted


RESTRICTED_TABLE = [
    ("compliant", COMPLIANT_RESTRICTED, ""),
    ("nothing set", spec(c()),
     'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
     'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
     'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
     'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")'),
    ("pod-level settings cover containers",
     spec(c(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}),
          securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "Localhost", "localhostProfile": "p"}}), ""),
    ("explicit runAsNonRoot false", spec(c(allowPrivilegeEscalation=False, runAsNonRoot=False, capabilities={"drop": ["ALL"]},
                                           seccompProfile={"type": "RuntimeDefault"}),
                                         securityContext={"runAsNonRoot": False}),
     'runAsNonRoot != true (pod and container "c" must not set securityContext.runAsNonRoot=false)'),
    ("runAsUser 0", spec(c(allowPrivilegeEscalation=False, runAsNonRoot=True, runAsUser=0, capabilities={"drop": ["ALL"]},
                           seccompProfile={"type": "RuntimeDefault"}), securityContext={"runAsUser": 0}),
     'runAsUser=0 (pod and container "c" must not set runAsUser=0)'),
    ("added capability", spec(c(allowPrivilegeEscalation=False, runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"},
                                capabilities={"drop": ["ALL"], "add": ["CHOWN"]})),
     'unrestricted capabilities (container "c" must not include "CHOWN" in securityContext.capabilities.add)'),
    ("volume types", dict(COMPLIANT_RESTRICTED, volumes=[{"name": "n", "nfs": {"server": "s", "path": "/"}},
                                                         {"name": "s", "secret": {"secretName": "x"}},
                                                         {"name": "w", "weird": {}}]),
     'restricted volume types (volumes "n", "w" use restricted volume types "nfs", "unknown")'),
    ("windows pods are exempt from linux-only controls",
     spec(c(runAsNonRoot=True), os={"name": "windows"}), ""),
]


@pytest.mark.parametrize("case,pod_spec,expected", RESTRICTED_TABLE, ids=[row[0] for row in RESTRICTED_TABLE])
def test_restricted_checks(case, pod_spec, expected):
    assert detail(R, pod_spec) == expected


def test_versions_pin_older_check_revisions():
    caps = spec(c(allowPrivilegeEscalation=False, runAsNonRoot=True, seccompProfile={"type": "RuntimeDefault"},
                  capabilities={"add": ["SYS_ADMIN"]}))
    # before 1.22 restricted did not require drop ALL, and the baseline capabilities check still applied
    assert detail(LevelVersion("restricted", Version(21)), caps) == (
        'non-default capabilities (container "c" must not include "SYS_ADMIN" in securityContext.capabilities.add)')
    sysctl = spec(securityContext={"sysctls": [{"name": "net.ipv4.tcp_rmem", "value": "1"}]})
    assert detail(LevelVersion("baseline", Version(31)), sysctl) == "forbidden sysctls (net.ipv4.tcp_rmem)"
    assert detail(LevelVersion("baseline", Version(32)), sysctl) == ""
    probe = spec(c() | {"readinessProbe": {"tcpSocket": {"host": "h", "port": 1}}})
    assert detail(LevelVersion("baseline", Version(33)), probe) == ""
    assert detail(LevelVersion("baseline", Version(99)), probe).startswith("probe or lifecycle host")
    assert [check for check, _ in checks_for(LevelVersion("privileged"))] == []


def test_user_namespaced_pods_relaxed_from_1_35():
    pod = spec(c(allowPrivilegeEscalation=False, capabilities={"drop": ["ALL"]}, seccompProfile={"type": "RuntimeDefault"},
                 runAsUser=0, procMount="Unmasked"), hostUsers=False)
    assert detail(LevelVersion("baseline"), pod) == ""
    assert detail(R, pod) == 'procMount (container "c" must not set securityContext.procMount to "Unmasked")'
    assert "runAsUser=0" in detail(LevelVersion("restricted", Version(34)), pod)


# labels ----------------------------------------------------------------------------------------
def test_labels_override_the_default_and_bad_values_are_field_errors():
    policy, problems = labels.policy_from_labels({"pod-security.kubernetes.io/enforce": "baseline",
                                                  "pod-security.kubernetes.io/warn-version": "v1.30"},
                                                 labels.parse_default("warn=restricted"))
    assert (str(policy.enforce), str(policy.warn), str(policy.audit)) == \
        ("baseline:latest", "restricted:v1.30", "privileged:latest")
    assert problems == []
    policy, problems = labels.policy_from_labels({"pod-security.kubernetes.io/enforce": "strict",
                                                  "pod-security.kubernetes.io/warn": "nope",
                                                  "pod-security.kubernetes.io/audit-version": "1.30"})
    assert str(policy.enforce) == "restricted:latest" and policy.warn.level == "privileged"
    assert [f"{p.field}: {p.message()}" for p in problems] == [
        'metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": must be one of privileged, '
        'baseline, restricted',
        'metadata.labels[pod-security.kubernetes.io/audit-version]: Invalid value: "1.30": must be "latest" or "v1.x"',
        'metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: "nope": must be one of privileged, '
        'baseline, restricted']


@pytest.mark.parametrize("text", ["enforce", "bogus=baseline", "enforce=x", "warn-version=1.2"])
def test_bad_server_default_is_refused(text):
    with pytest.raises(ValueError):
        labels.parse_default(text)


# decisions -------------------------------------------------------------------------------------
def test_decide_enforce_refuses_without_warning_and_warns_otherwise():
    policy = labels.parse_default("enforce=baseline,warn=restricted,audit=restricted")
    refused = psa.decide(policy, {}, spec(c(privileged=True)), enforce=True)
    assert refused.forbidden.startswith('violates PodSecurity "baseline:latest": privileged (')
    assert refused.warnings == [] and refused.audit.startswith('would violate PodSecurity "restricted:latest"')
    template = psa.decide(policy, {}, spec(c(privileged=True)), enforce=False)
    assert template.forbidden == ""
    assert template.warnings[0].startswith('would violate PodSecurity "restricted:latest": privileged (')


def test_significant_pod_update_as_upstream():
    old = {"metadata": {}, "spec": spec(c(image="a") | {"image": "a"})}
    relabelled = {"metadata": {"labels": {"x": "y"}}, "spec": old["spec"]}
    assert not psa.significant_pod_update(relabelled, old)
    new_image = {"metadata": {}, "spec": spec(c() | {"image": "b"})}
    assert psa.significant_pod_update(new_image, old)
    seccomp = {"metadata": {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}, "spec": old["spec"]}
    assert psa.significant_pod_update(seccomp, old)


def test_tightened_enforce():
    def p(text):
        return labels.parse_default(text)
    assert psa.tightened_enforce(p("enforce=restricted"), p("enforce=baseline"))
    assert not psa.tightened_enforce(p("enforce=baseline"), p("enforce=restricted"))
    assert not psa.tightened_enforce(p("enforce=privileged"), p(""))
    assert psa.tightened_enforce(p("enforce=baseline,enforce-version=v1.20"), p("enforce=restricted"))


def test_existing_pod_warnings_group_pods_by_reasons():
    def pod(name, **security):
        return {"metadata": {"name": name}, "spec": spec(c(**security))}
    pods = [pod("b", privileged=True), pod("a", privileged=True), pod("z", privileged=True), pod("ok"),
            {"metadata": {"name": "h"}, "spec": spec(hostPID=True)}]
    assert psa.existing_pod_warnings("ns", B, pods) == [
        'existing pods in namespace "ns" violate the new PodSecurity enforce level "baseline:latest"',
        "a (and 2 other pods): privileged", "h: host namespaces"]
    assert psa.existing_pod_warnings("ns", B, [pod("ok")]) == []


def test_pod_template_of_workload_kinds():
    deployment = {"spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": spec()}}}
    assert psa.pod_template("apps", "deployments", deployment) == ({"labels": {"a": "b"}}, spec())
    assert psa.pod_template("", "configmaps", {}) is None


# the step in the API ---------------------------------------------------------------------------
def _pod(name: str, **security) -> dict:
    return {"metadata": {"name": name}, "spec": spec(c(**security))}


def test_api_enforces_on_pods_warns_on_templates_and_checks_namespace_labels(tmp_path):
    async def scenario():
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        api = API(storage)
        await api.start()
        try:
            await api.create(api.namespaces, "", {"metadata": {"name": "x"}})
            await api.create(api.pods, "x", _pod("old", privileged=True))
            collected = request_warnings.begin()
            await api.patch(api.namespaces, "", "x", "application/merge-patch+json",
                            {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "baseline",
                                                     "pod-security.kubernetes.io/warn": "restricted"}}})
            assert collected == ['existing pods in namespace "x" violate the new PodSecurity enforce level '
                                 '"baseline:latest"', "old: privileged"]
            with pytest.raises(errors.APIError) as refused:
                await api.create(api.pods, "x", _pod("p", privileged=True))
            assert (refused.value.code, refused.value.reason) == (403, "Forbidden")
            assert refused.value.message == ('pods "p" is forbidden: violates PodSecurity "baseline:latest": privileged '
                                             '(container "c" must not set securityContext.privileged=true)')
            with pytest.raises(errors.APIError):
                await api.pods.get("x", "p")
            collected = request_warnings.begin()
            await api.create(api.pods, "x", _pod("fine"))
            assert collected[0].startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation')
            collected = request_warnings.begin()
            deployment = {"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}}, "spec": spec(c(privileged=True))}}}
            await api.create(api.registry("apps", "deployments"), "x", deployment)
            assert collected == ['would violate PodSecurity "restricted:latest": privileged (container "c" must not '
                                 'set securityContext.privileged=true), allowPrivilegeEscalation != false (container "c" '
                                 'must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities '
                                 '(container "c" must set securityContext.capabilities.drop=["ALL"]), runAsNonRoot != '
                                 'true (pod or container "c" must set securityContext.runAsNonRoot=true), seccompProfile '
                                 '(pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" '
                                 'or "Localhost")']
            # a metadata-only update of a violating pod stays allowed
            await api.patch(api.pods, "x", "old", "application/merge-patch+json", {"metadata": {"labels": {"k": "v"}}})
            with pytest.raises(errors.APIError) as invalid:
                await api.patch(api.namespaces, "", "x", "application/merge-patch+json",
                                {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "strict"}}})
            assert (invalid.value.code, invalid.value.message) == (422, (
                'Namespace "x" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
                '"strict": must be one of privileged, baseline, restricted'))
            with pytest.raises(errors.APIError) as invalid:
                await api.create(api.namespaces, "", {"metadata": {"name": "y", "labels": {
                    "pod-security.kubernetes.io/warn-version": "v2"}}})
            assert invalid.value.code == 422 and "must be \"latest\" or \"v1.x\"" in invalid.value.message
        finally:
            await storage.close()
    asyncio.run(scenario())


def test_server_default_and_exempt_namespaces(tmp_path):
    async def scenario():
        storage = SQLiteStorage(str(tmp_path / "state.db"))
        await storage.start()
        api = API(storage)
        api.pod_security.default = labels.parse_default("enforce=baseline")
        api.pod_security.exempt_namespaces = frozenset({"kube-system"})
        await api.start()
        try:
            with pytest.raises(errors.APIError) as refused:
                await api.create(api.pods, "default", _pod("p", privileged=True))
            assert refused.value.code == 403
            await api.create(api.pods, "kube-system", _pod("p", privileged=True))
        finally:
            await storage.close()
    asyncio.run(scenario())
