"""Protobuf schema of a whole core/v1 PodTemplateSpec (upstream generated.proto field numbers), for kinds whose
clients send arbitrary pod templates as protobuf: `kubectl create job --from=cronjob/x` copies the CronJob's
template, volumes, probes, security contexts and affinity included, so nothing of it may be dropped.

Field kinds: "inline" merges an embedded struct into its parent (Go's anonymous fields: a Volume's
VolumeSource, a Probe's handler, a key selector's LocalObjectReference); `_p` marks pointer fields, whose
zero value ("", 0, false) is meaningful and kept (JSON omits only what is unset)."""
from __future__ import annotations

from apiserver.protobuf.fields import OBJECT_META, Field
from apiserver.protobuf.workloads import LABEL_SELECTOR


def _p(name: str, kind: str, schema: dict | None = None, repeated: bool = False) -> Field:
    """A pointer field: its zero value is kept."""
    return Field(name, kind, schema, repeated=repeated, keep_zero=True)


def _list(name: str, schema: dict) -> Field:
    return Field(name, "message", schema, repeated=True)


def _strings(name: str) -> Field:
    return Field(name, "string", repeated=True)


LOCAL_OBJECT_REFERENCE = {1: Field("name", "string")}
_INLINE_REFERENCE = Field("localObjectReference", "inline", LOCAL_OBJECT_REFERENCE)
OBJECT_FIELD_SELECTOR = {1: Field("apiVersion", "string"), 2: Field("fieldPath", "string")}
RESOURCE_FIELD_SELECTOR = {1: Field("containerName", "string"), 2: Field("resource", "string"),
                           3: Field("divisor", "quantity")}
_KEY_SELECTOR = {1: _INLINE_REFERENCE, 2: Field("key", "string"), 3: _p("optional", "bool")}
ENV_VAR_SOURCE = {
    1: Field("fieldRef", "message", OBJECT_FIELD_SELECTOR), 2: Field("resourceFieldRef", "message", RESOURCE_FIELD_SELECTOR),
    3: Field("configMapKeyRef", "message", _KEY_SELECTOR), 4: Field("secretKeyRef", "message", _KEY_SELECTOR),
    5: Field("fileKeyRef", "message", {1: Field("volumeName", "string"), 2: Field("path", "string"),
                                       3: Field("key", "string"), 4: _p("optional", "bool")}),
}
ENV_VAR = {1: Field("name", "string"), 2: Field("value", "string"), 3: Field("valueFrom", "message", ENV_VAR_SOURCE)}
_ENV_SOURCE_REF = {1: _INLINE_REFERENCE, 2: _p("optional", "bool")}
ENV_FROM_SOURCE = {1: Field("prefix", "string"), 2: Field("configMapRef", "message", _ENV_SOURCE_REF),
                   3: Field("secretRef", "message", _ENV_SOURCE_REF)}
CONTAINER_PORT = {1: Field("name", "string"), 2: Field("hostPort", "int"),
                  3: Field("containerPort", "int", keep_zero=True), 4: Field("protocol", "string"),
                  5: Field("hostIP", "string")}
RESOURCE_REQUIREMENTS = {1: Field("limits", "quantitymap"), 2: Field("requests", "quantitymap"),
                         3: _list("claims", {1: Field("name", "string"), 2: Field("request", "string")})}
VOLUME_MOUNT = {1: Field("name", "string"), 2: Field("readOnly", "bool"), 7: _p("recursiveReadOnly", "string"),
                3: Field("mountPath", "string"), 4: Field("subPath", "string"), 5: _p("mountPropagation", "string"),
                6: Field("subPathExpr", "string")}
VOLUME_DEVICE = {1: Field("name", "string"), 2: Field("devicePath", "string")}
EXEC_ACTION = {1: _strings("command")}
HTTP_GET_ACTION = {1: Field("path", "string"), 2: Field("port", "intorstring", keep_zero=True),
                   3: Field("host", "string"), 4: Field("scheme", "string"),
                   5: _list("httpHeaders", {1: Field("name", "string"), 2: Field("value", "string")})}
TCP_SOCKET_ACTION = {1: Field("port", "intorstring", keep_zero=True), 2: Field("host", "string")}
GRPC_ACTION = {1: Field("port", "int", keep_zero=True), 2: _p("service", "string")}
PROBE_HANDLER = {1: Field("exec", "message", EXEC_ACTION), 2: Field("httpGet", "message", HTTP_GET_ACTION),
                 3: Field("tcpSocket", "message", TCP_SOCKET_ACTION), 4: Field("grpc", "message", GRPC_ACTION)}
PROBE = {1: Field("handler", "inline", PROBE_HANDLER), 2: Field("initialDelaySeconds", "int"),
         3: Field("timeoutSeconds", "int"), 4: Field("periodSeconds", "int"), 5: Field("successThreshold", "int"),
         6: Field("failureThreshold", "int"), 7: _p("terminationGracePeriodSeconds", "int")}
LIFECYCLE_HANDLER = {1: Field("exec", "message", EXEC_ACTION), 2: Field("httpGet", "message", HTTP_GET_ACTION),
                     3: Field("tcpSocket", "message", TCP_SOCKET_ACTION),
                     4: Field("sleep", "message", {1: Field("seconds", "int", keep_zero=True)})}
LIFECYCLE = {1: Field("postStart", "message", LIFECYCLE_HANDLER), 2: Field("preStop", "message", LIFECYCLE_HANDLER),
             3: _p("stopSignal", "string")}
SE_LINUX_OPTIONS = {1: Field("user", "string"), 2: Field("role", "string"), 3: Field("type", "string"),
                    4: Field("level", "string")}
WINDOWS_OPTIONS = {1: _p("gmsaCredentialSpecName", "string"), 2: _p("gmsaCredentialSpec", "string"),
                   3: _p("runAsUserName", "string"), 4: _p("hostProcess", "bool")}
_PROFILE = {1: Field("type", "string"), 2: _p("localhostProfile", "string")}
SECURITY_CONTEXT = {
    1: Field("capabilities", "message", {1: _strings("add"), 2: _strings("drop")}), 2: _p("privileged", "bool"),
    3: Field("seLinuxOptions", "message", SE_LINUX_OPTIONS), 10: Field("windowsOptions", "message", WINDOWS_OPTIONS),
    4: _p("runAsUser", "int"), 8: _p("runAsGroup", "int"), 5: _p("runAsNonRoot", "bool"),
    6: _p("readOnlyRootFilesystem", "bool"), 7: _p("allowPrivilegeEscalation", "bool"), 9: _p("procMount", "string"),
    11: Field("seccompProfile", "message", _PROFILE), 12: Field("appArmorProfile", "message", _PROFILE),
}
CONTAINER = {
    1: Field("name", "string"), 2: Field("image", "string"), 3: _strings("command"), 4: _strings("args"),
    5: Field("workingDir", "string"), 6: _list("ports", CONTAINER_PORT), 19: _list("envFrom", ENV_FROM_SOURCE),
    7: _list("env", ENV_VAR), 8: Field("resources", "message", RESOURCE_REQUIREMENTS),
    23: _list("resizePolicy", {1: Field("resourceName", "string"), 2: Field("restartPolicy", "string")}),
    24: _p("restartPolicy", "string"),
    25: _list("restartPolicyRules", {1: Field("action", "string"), 2: Field("exitCodes", "message", {
        1: Field("operator", "string"), 2: Field("values", "int", repeated=True)})}),
    9: _list("volumeMounts", VOLUME_MOUNT), 21: _list("volumeDevices", VOLUME_DEVICE),
    10: Field("livenessProbe", "message", PROBE), 11: Field("readinessProbe", "message", PROBE),
    22: Field("startupProbe", "message", PROBE), 12: Field("lifecycle", "message", LIFECYCLE),
    13: Field("terminationMessagePath", "string"), 20: Field("terminationMessagePolicy", "string"),
    14: Field("imagePullPolicy", "string"), 15: Field("securityContext", "message", SECURITY_CONTEXT),
    16: Field("stdin", "bool"), 17: Field("stdinOnce", "bool"), 18: Field("tty", "bool"),
}
EPHEMERAL_CONTAINER = {1: Field("ephemeralContainerCommon", "inline", CONTAINER),
                       2: Field("targetContainerName", "string")}
KEY_TO_PATH = {1: Field("key", "string"), 2: Field("path", "string"), 3: _p("mode", "int")}
DOWNWARD_API_FILE = {1: Field("path", "string"), 2: Field("fieldRef", "message", OBJECT_FIELD_SELECTOR),
                     3: Field("resourceFieldRef", "message", RESOURCE_FIELD_SELECTOR), 4: _p("mode", "int")}
VOLUME_PROJECTION = {
    1: Field("secret", "message", {1: _INLINE_REFERENCE, 2: _list("items", KEY_TO_PATH), 4: _p("optional", "bool")}),
    2: Field("downwardAPI", "message", {1: _list("items", DOWNWARD_API_FILE)}),
    3: Field("configMap", "message", {1: _INLINE_REFERENCE, 2: _list("items", KEY_TO_PATH), 4: _p("optional", "bool")}),
    4: Field("serviceAccountToken", "message", {1: Field("audience", "string"), 2: _p("expirationSeconds", "int"),
                                                3: Field("path", "string")}),
    5: Field("clusterTrustBundle", "message", {1: _p("name", "string"), 2: _p("signerName", "string"),
                                               3: Field("labelSelector", "message", LABEL_SELECTOR),
                                               5: _p("optional", "bool"), 4: Field("path", "string")}),
    6: Field("podCertificate", "message", {1: Field("signerName", "string"), 2: Field("keyType", "string"),
                                           3: _p("maxExpirationSeconds", "int"), 4: Field("credentialBundlePath", "string"),
                                           5: Field("keyPath", "string"), 6: Field("certificateChainPath", "string"),
                                           7: Field("userAnnotations", "map")}),
}
VOLUME_SOURCE = {
    1: Field("hostPath", "message", {1: Field("path", "string"), 2: _p("type", "string")}),
    2: Field("emptyDir", "message", {1: Field("medium", "string"), 2: Field("sizeLimit", "quantity")}),
    5: Field("gitRepo", "message", {1: Field("repository", "string"), 2: Field("revision", "string"),
                                    3: Field("directory", "string")}),
    6: Field("secret", "message", {1: Field("secretName", "string"), 2: _list("items", KEY_TO_PATH),
                                   3: _p("defaultMode", "int"), 4: _p("optional", "bool")}),
    7: Field("nfs", "message", {1: Field("server", "string"), 2: Field("path", "string"), 3: Field("readOnly", "bool")}),
    10: Field("persistentVolumeClaim", "message", {1: Field("claimName", "string"), 2: Field("readOnly", "bool")}),
    16: Field("downwardAPI", "message", {1: _list("items", DOWNWARD_API_FILE), 2: _p("defaultMode", "int")}),
    19: Field("configMap", "message", {1: _INLINE_REFERENCE, 2: _list("items", KEY_TO_PATH),
                                       3: _p("defaultMode", "int"), 4: _p("optional", "bool")}),
    26: Field("projected", "message", {1: _list("sources", VOLUME_PROJECTION), 2: _p("defaultMode", "int")}),
    28: Field("csi", "message", {1: Field("driver", "string"), 2: _p("readOnly", "bool"), 3: _p("fsType", "string"),
                                 4: Field("volumeAttributes", "map"),
                                 5: Field("nodePublishSecretRef", "message", LOCAL_OBJECT_REFERENCE)}),
    30: Field("image", "message", {1: Field("reference", "string"), 2: Field("pullPolicy", "string")}),
}
VOLUME = {1: Field("name", "string"), 2: Field("volumeSource", "inline", VOLUME_SOURCE)}
NODE_SELECTOR_REQUIREMENT = {1: Field("key", "string"), 2: Field("operator", "string"), 3: _strings("values")}
NODE_SELECTOR_TERM = {1: _list("matchExpressions", NODE_SELECTOR_REQUIREMENT),
                      2: _list("matchFields", NODE_SELECTOR_REQUIREMENT)}
POD_AFFINITY_TERM = {1: Field("labelSelector", "message", LABEL_SELECTOR), 2: _strings("namespaces"),
                     3: Field("topologyKey", "string"), 4: Field("namespaceSelector", "message", LABEL_SELECTOR),
                     5: _strings("matchLabelKeys"), 6: _strings("mismatchLabelKeys")}
_POD_AFFINITY = {1: _list("requiredDuringSchedulingIgnoredDuringExecution", POD_AFFINITY_TERM),
                 2: _list("preferredDuringSchedulingIgnoredDuringExecution", {
                     1: Field("weight", "int", keep_zero=True), 2: Field("podAffinityTerm", "message", POD_AFFINITY_TERM)})}
AFFINITY = {
    1: Field("nodeAffinity", "message", {
        1: Field("requiredDuringSchedulingIgnoredDuringExecution", "message",
                 {1: _list("nodeSelectorTerms", NODE_SELECTOR_TERM)}),
        2: _list("preferredDuringSchedulingIgnoredDuringExecution", {
            1: Field("weight", "int", keep_zero=True), 2: Field("preference", "message", NODE_SELECTOR_TERM)})}),
    2: Field("podAffinity", "message", _POD_AFFINITY), 3: Field("podAntiAffinity", "message", _POD_AFFINITY),
}
TOLERATION = {1: Field("key", "string"), 2: Field("operator", "string"), 3: Field("value", "string"),
              4: Field("effect", "string"), 5: _p("tolerationSeconds", "int")}
POD_SECURITY_CONTEXT = {
    1: Field("seLinuxOptions", "message", SE_LINUX_OPTIONS), 8: Field("windowsOptions", "message", WINDOWS_OPTIONS),
    2: _p("runAsUser", "int"), 6: _p("runAsGroup", "int"), 3: _p("runAsNonRoot", "bool"),
    4: Field("supplementalGroups", "int", repeated=True), 12: _p("supplementalGroupsPolicy", "string"),
    5: _p("fsGroup", "int"), 7: _list("sysctls", {1: Field("name", "string"), 2: Field("value", "string")}),
    9: _p("fsGroupChangePolicy", "string"), 10: Field("seccompProfile", "message", _PROFILE),
    11: Field("appArmorProfile", "message", _PROFILE), 13: _p("seLinuxChangePolicy", "string"),
}
TOPOLOGY_SPREAD_CONSTRAINT = {
    1: Field("maxSkew", "int", keep_zero=True), 2: Field("topologyKey", "string"),
    3: Field("whenUnsatisfiable", "string"), 4: Field("labelSelector", "message", LABEL_SELECTOR),
    5: _p("minDomains", "int"), 6: _p("nodeAffinityPolicy", "string"), 7: _p("nodeTaintsPolicy", "string"),
    8: _strings("matchLabelKeys"),
}
POD_SPEC = {
    1: _list("volumes", VOLUME), 20: _list("initContainers", CONTAINER), 2: _list("containers", CONTAINER),
    34: _list("ephemeralContainers", EPHEMERAL_CONTAINER), 3: Field("restartPolicy", "string"),
    4: _p("terminationGracePeriodSeconds", "int"), 5: _p("activeDeadlineSeconds", "int"),
    6: Field("dnsPolicy", "string"), 7: Field("nodeSelector", "map"), 8: Field("serviceAccountName", "string"),
    9: Field("serviceAccount", "string"), 21: _p("automountServiceAccountToken", "bool"),
    10: Field("nodeName", "string"), 11: Field("hostNetwork", "bool"), 12: Field("hostPID", "bool"),
    13: Field("hostIPC", "bool"), 27: _p("shareProcessNamespace", "bool"),
    14: Field("securityContext", "message", POD_SECURITY_CONTEXT), 15: _list("imagePullSecrets", LOCAL_OBJECT_REFERENCE),
    16: Field("hostname", "string"), 17: Field("subdomain", "string"), 18: Field("affinity", "message", AFFINITY),
    19: Field("schedulerName", "string"), 22: _list("tolerations", TOLERATION),
    23: _list("hostAliases", {1: Field("ip", "string"), 2: _strings("hostnames")}),
    24: Field("priorityClassName", "string"), 25: _p("priority", "int"),
    26: Field("dnsConfig", "message", {1: _strings("nameservers"), 2: _strings("searches"),
                                       3: _list("options", {1: Field("name", "string"), 2: _p("value", "string")})}),
    28: _list("readinessGates", {1: Field("conditionType", "string")}), 29: _p("runtimeClassName", "string"),
    30: _p("enableServiceLinks", "bool"), 31: _p("preemptionPolicy", "string"), 32: Field("overhead", "quantitymap"),
    33: _list("topologySpreadConstraints", TOPOLOGY_SPREAD_CONSTRAINT), 35: _p("setHostnameAsFQDN", "bool"),
    36: Field("os", "message", {1: Field("name", "string")}), 37: _p("hostUsers", "bool"),
    38: _list("schedulingGates", {1: Field("name", "string")}),
    39: _list("resourceClaims", {1: Field("name", "string"), 3: _p("resourceClaimName", "string"),
                                 4: _p("resourceClaimTemplateName", "string")}),
    40: Field("resources", "message", RESOURCE_REQUIREMENTS), 41: _p("hostnameOverride", "string"),
}
POD_TEMPLATE_SPEC = {1: Field("metadata", "message", OBJECT_META), 2: Field("spec", "message", POD_SPEC)}
