"""Unknown-field detection for `fieldValidation=Strict|Warn` (the fields upstream's types declare).

A shape maps each declared field to the shape of its value, or to None when the value is not checked
further (scalars, string maps, free-form or not yet described structs). A list value is checked item by
item against the field's shape. Paths are upstream's: `spec.containers[0].foo`. Status is not checked:
only the server's own tasks write it.
"""
from __future__ import annotations

from typing import Any, Optional

from apiserver.openapi_schemas import DEFINITIONS

Shape = dict[str, Optional["Shape"]]


def _leaves(*names: str) -> Shape:
    return {name: None for name in names}


OWNER_REFERENCE = _leaves("apiVersion", "kind", "name", "uid", "controller", "blockOwnerDeletion")
OBJECT_META: Shape = {
    **_leaves("name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
              "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
              "finalizers", "managedFields"),
    "ownerReferences": OWNER_REFERENCE,
}
OBJECT_REFERENCE = _leaves("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
KEY_SELECTOR = _leaves("name", "key", "optional")
ENV_VAR: Shape = {"name": None, "value": None, "valueFrom": {
    "fieldRef": _leaves("apiVersion", "fieldPath"),
    "resourceFieldRef": _leaves("containerName", "resource", "divisor"),
    "configMapKeyRef": KEY_SELECTOR, "secretKeyRef": KEY_SELECTOR,
    "fileKeyRef": _leaves("volumeName", "path", "key", "optional")}}
ENV_FROM: Shape = {"prefix": None, "configMapRef": _leaves("name", "optional"),
                   "secretRef": _leaves("name", "optional")}
HTTP_GET: Shape = {**_leaves("path", "port", "host", "scheme"), "httpHeaders": _leaves("name", "value")}
HANDLER: Shape = {"exec": _leaves("command"), "httpGet": HTTP_GET, "tcpSocket": _leaves("port", "host"),
                  "grpc": _leaves("port", "service"), "sleep": _leaves("seconds")}
PROBE: Shape = {**{k: v for k, v in HANDLER.items() if k != "sleep"},
                **_leaves("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold",
                          "failureThreshold", "terminationGracePeriodSeconds")}
CONTAINER_PORT = _leaves("name", "hostPort", "containerPort", "protocol", "hostIP")
CONTAINER: Shape = {
    **_leaves("name", "image", "command", "args", "workingDir", "resizePolicy", "restartPolicy",
              "restartPolicyRules", "volumeDevices", "terminationMessagePath",
              "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"),
    "ports": CONTAINER_PORT, "env": ENV_VAR, "envFrom": ENV_FROM,
    "resources": _leaves("limits", "requests", "claims"),
    "volumeMounts": _leaves("name", "readOnly", "recursiveReadOnly", "mountPath", "subPath", "mountPropagation",
                            "subPathExpr"),
    "livenessProbe": PROBE, "readinessProbe": PROBE, "startupProbe": PROBE,
    "lifecycle": {"postStart": HANDLER, "preStop": HANDLER, "stopSignal": None},
}
VOLUME = _leaves("name", "hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret",
                 "nfs", "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs",
                 "flocker", "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                 "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                 "image")
TOLERATION = _leaves("key", "operator", "value", "effect", "tolerationSeconds")
POD_SPEC: Shape = {
    **_leaves("restartPolicy", "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy",
              "nodeSelector", "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName",
              "hostNetwork", "hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets",
              "hostname", "subdomain", "affinity", "schedulerName", "hostAliases", "priorityClassName", "priority",
              "dnsConfig", "readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy",
              "overhead", "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
              "resourceClaims", "resources", "hostnameOverride", "ephemeralContainers"),
    "containers": CONTAINER, "initContainers": CONTAINER, "volumes": VOLUME, "tolerations": TOLERATION,
}
POD_TEMPLATE: Shape = {"metadata": OBJECT_META, "spec": POD_SPEC}
LABEL_SELECTOR: Shape = {"matchLabels": None, "matchExpressions": _leaves("key", "operator", "values")}
SERVICE_SPEC: Shape = {
    **_leaves("selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity", "loadBalancerIP",
              "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy", "healthCheckNodePort",
              "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies", "ipFamilyPolicy",
              "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy", "trafficDistribution"),
    "ports": _leaves("name", "protocol", "appProtocol", "port", "targetPort", "nodePort"),
}
_REPLICATED = {"replicas": None, "minReadySeconds": None, "template": POD_TEMPLATE}
WORKLOAD_SPEC: dict[str, Shape] = {
    "Deployment": {**_REPLICATED, "selector": LABEL_SELECTOR,
                   "strategy": {"type": None, "rollingUpdate": _leaves("maxUnavailable", "maxSurge")},
                   **_leaves("revisionHistoryLimit", "paused", "progressDeadlineSeconds")},
    "ReplicaSet": {**_REPLICATED, "selector": LABEL_SELECTOR},
    "ReplicationController": {**_REPLICATED, "selector": None},  # a plain label map
}
JOB_SPEC: Shape = {
    **_leaves("parallelism", "completions", "activeDeadlineSeconds", "backoffLimit", "backoffLimitPerIndex",
              "maxFailedIndexes", "manualSelector", "ttlSecondsAfterFinished", "completionMode", "suspend",
              "podReplacementPolicy", "managedBy"),
    "selector": LABEL_SELECTOR, "template": POD_TEMPLATE,
    "podFailurePolicy": {"rules": {"action": None, "onExitCodes": _leaves("containerName", "operator", "values"),
                                   "onPodConditions": _leaves("type", "status")}},
    "successPolicy": {"rules": _leaves("succeededIndexes", "succeededCount")},
}
CRONJOB_SPEC: Shape = {
    **_leaves("schedule", "timeZone", "startingDeadlineSeconds", "concurrencyPolicy", "suspend",
              "successfulJobsHistoryLimit", "failedJobsHistoryLimit"),
    "jobTemplate": {"metadata": OBJECT_META, "spec": JOB_SPEC},
}
PVC_SPEC: Shape = {**_leaves("accessModes", "selector", "volumeName", "storageClassName", "volumeMode", "dataSource",
                             "dataSourceRef", "volumeAttributesClassName"), "resources": _leaves("limits", "requests")}
PVC_TEMPLATE: Shape = {"apiVersion": None, "kind": None, "metadata": OBJECT_META, "spec": PVC_SPEC, "status": None}
WORKLOAD_SPEC["DaemonSet"] = {"selector": LABEL_SELECTOR, "template": POD_TEMPLATE, **_leaves(
    "minReadySeconds", "revisionHistoryLimit", "templateGeneration"), "updateStrategy": {
    "type": None, "rollingUpdate": _leaves("maxUnavailable", "maxSurge")}}
WORKLOAD_SPEC["StatefulSet"] = {**_REPLICATED, "selector": LABEL_SELECTOR, "volumeClaimTemplates": PVC_TEMPLATE,
                                **_leaves("serviceName", "podManagementPolicy", "revisionHistoryLimit"),
                                "updateStrategy": {"type": None, "rollingUpdate": _leaves("partition", "maxUnavailable")},
                                "persistentVolumeClaimRetentionPolicy": _leaves("whenDeleted", "whenScaled"),
                                "ordinals": _leaves("start")}
ENDPOINT_PORT = _leaves("name", "port", "protocol", "appProtocol")
ENDPOINT_ADDRESS: Shape = {**_leaves("ip", "hostname", "nodeName"), "targetRef": OBJECT_REFERENCE}


POLICY_RULE = _leaves("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
RBAC_SUBJECT = _leaves("kind", "apiGroup", "name", "namespace")
ROLE_REF = _leaves("apiGroup", "kind", "name")


def _kind(**fields: Shape | None) -> Shape:
    return {"apiVersion": None, "kind": None, "metadata": OBJECT_META, **fields}


def _from_definition(name: str) -> Shape:
    """The shape of a fully described definition (openapi_schemas): every field, nested definitions too;
    scalars, maps and free-form objects unchecked; status left unchecked."""
    shape: Shape = {}
    for field, (type_name, _) in DEFINITIONS[name].fields.items():
        base = type_name[2:] if type_name.startswith("[]") else type_name
        shape[field] = _from_definition(base) if base in DEFINITIONS and field != "status" else None
    if "metadata" in shape:
        shape["metadata"] = OBJECT_META
    return shape


KINDS: dict[str, Shape] = {
    "Pod": _kind(spec=POD_SPEC, status=None),
    "Node": _kind(spec={**_leaves("podCIDR", "podCIDRs", "providerID", "unschedulable", "configSource",
                                  "externalID"),
                        "taints": _leaves("key", "value", "effect", "timeAdded")}, status=None),
    "Namespace": _kind(spec=_leaves("finalizers"), status=None),
    "Lease": _kind(spec=_leaves("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime",
                                "leaseTransitions", "strategy", "preferredHolder")),
    "ConfigMap": _kind(data=None, binaryData=None, immutable=None),
    "Secret": _kind(data=None, stringData=None, type=None, immutable=None),
    "Service": _kind(spec=SERVICE_SPEC, status=None),
    "Endpoints": _kind(subsets={"addresses": ENDPOINT_ADDRESS, "notReadyAddresses": ENDPOINT_ADDRESS,
                                "ports": ENDPOINT_PORT}),
    "EndpointSlice": _kind(addressType=None, ports=ENDPOINT_PORT, endpoints={
        **_leaves("addresses", "conditions", "hostname", "deprecatedTopology", "nodeName", "zone", "hints"),
        "targetRef": OBJECT_REFERENCE}),
    "ResourceQuota": _kind(spec=_leaves("hard", "scopes", "scopeSelector"), status=None),
    "Event": _kind(involvedObject=OBJECT_REFERENCE, related=OBJECT_REFERENCE, source=_leaves("component", "host"),
                   **_leaves("reason", "message", "firstTimestamp", "lastTimestamp", "count", "type", "eventTime",
                             "series", "action", "reportingComponent", "reportingInstance")),
    **{kind: _kind(spec=spec, status=None) for kind, spec in WORKLOAD_SPEC.items()},
    "Job": _kind(spec=JOB_SPEC, status=None),
    "CronJob": _kind(spec=CRONJOB_SPEC, status=None),
    "Role": _kind(rules=POLICY_RULE),
    "ClusterRole": _kind(rules=POLICY_RULE, aggregationRule=_leaves("clusterRoleSelectors")),
    "RoleBinding": _kind(subjects=RBAC_SUBJECT, roleRef=ROLE_REF),
    "ClusterRoleBinding": _kind(subjects=RBAC_SUBJECT, roleRef=ROLE_REF),
    "ControllerRevision": _kind(data=None, revision=None),
    "PersistentVolumeClaim": _kind(spec=PVC_SPEC, status=None),
    "CertificateSigningRequest": _kind(spec=_leaves("request", "signerName", "expirationSeconds", "usages",
                                                    "username", "uid", "groups", "extra"), status=None),
    **{kind: _from_definition(f"{group}.{kind}") for group, kind in (
        ("networking", "NetworkPolicy"), ("networking", "Ingress"), ("networking", "IngressClass"),
        ("core", "LimitRange"), ("scheduling", "PriorityClass"), ("autoscaling", "HorizontalPodAutoscaler"),
        ("policy", "PodDisruptionBudget"), ("core", "PersistentVolume"), ("storage", "StorageClass"),
        ("storage", "CSIStorageCapacity"),
        ("apiextensions", "CustomResourceDefinition"), ("admissionregistration", "ValidatingWebhookConfiguration"),
        ("admissionregistration", "MutatingWebhookConfiguration"), ("apiregistration", "APIService"))},
}


_UNKNOWN = object()  # marks a field to report when it is reached


def unknown_fields(kind: str, obj: Any) -> list[str]:
    """Paths of fields the kind does not declare, in document order (known kinds only). Iterative: a deep
    body costs no recursion."""
    if not isinstance(obj, dict) or kind not in KINDS:
        return []
    found: list[str] = []
    pending: list[tuple[Any, Any, str]] = [(obj, KINDS[kind], "")]
    while pending:
        node, shape, path = pending.pop()
        if shape is _UNKNOWN:
            found.append(path)
        elif isinstance(node, list):
            pending.extend((item, shape, f"{path}[{index}]") for index, item in reversed(list(enumerate(node))))
        elif isinstance(node, dict):
            children = []
            for key, child in node.items():
                # "$patch", "$setElementOrder/..." and the like are strategic merge directives, not fields.
                if key.startswith("$"):
                    continue
                child_shape = shape.get(key, _UNKNOWN)
                if child_shape is not None:
                    children.append((child, child_shape, f"{path}.{key}" if path else key))
            pending.extend(reversed(children))
    return found


# Field types ------------------------------------------------------------------------------------
# The types come from the schemas the server publishes (openapi_schemas: what `kubectl explain` shows), so
# what a client is told and what it is held to are one table. Upstream decodes a body into Go structs
# before anything reads it; a value of another JSON type is a 400 there. Checking every body against the
# schema first gives the kinds' defaulting and validation well-typed objects, as upstream's typed code has.

_INT64_FIELDS = frozenset({"terminationGracePeriodSeconds", "activeDeadlineSeconds", "generation", "observedGeneration",
                           "deletionGracePeriodSeconds", "tolerationSeconds", "runAsUser", "runAsGroup", "fsGroup",
                           "expirationSeconds", "startingDeadlineSeconds"})
_GO_SCALARS = {"string": "string", "boolean": "bool", "number": "float64", "Time": "v1.Time",
               "IntOrString": "intstr.IntOrString", "Quantity": "resource.Quantity", "object": "object"}


class WrongType(Exception):
    """A field whose JSON value does not fit its declared type; `str()` is Go's decoding error."""


def definition_name(group: str, kind: str) -> str:
    """The schema definition of a kind: "core.Pod", "apps.Deployment", "discovery.EndpointSlice"."""
    return f"{group.split('.')[0] if group else 'core'}.{kind}"


def _go_type(type_name: str, field: str) -> str:
    if type_name.startswith("[]"):
        return "[]" + _go_type(type_name[2:], field)
    if type_name.startswith("map[string]"):
        return "map[string]" + _go_type(type_name[len("map[string]"):], field)
    if type_name == "integer":
        return "int64" if field in _INT64_FIELDS else "int32"
    if type_name in _GO_SCALARS:
        return _GO_SCALARS[type_name]
    return "v1." + type_name.partition(".")[2]


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _fits(type_name: str, value: Any) -> bool:
    if type_name.startswith("[]"):
        return isinstance(value, list)
    if type_name.startswith("map[string]") or type_name == "object":
        return isinstance(value, dict)
    if type_name in ("string", "Time"):
        return isinstance(value, str)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "IntOrString":
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
    if type_name == "Quantity":
        return isinstance(value, (str, int, float)) and not isinstance(value, bool)
    return isinstance(value, dict)  # a definition: a struct


def _zero(type_name: str) -> Any:
    """What Go leaves in a list item or map value decoded from null."""
    if type_name.startswith("[]") or type_name in ("Quantity", "IntOrString"):
        return None
    return {"string": "", "Time": None, "boolean": False, "integer": 0, "number": 0}.get(type_name, {})


def check_types(definitions: dict[str, Any], root: str, obj: dict[str, Any]) -> None:
    """Checks `obj` (in place) against definition `root` and the ones it references. Raises WrongType for the
    first field (document order) whose value has another JSON type, worded as Go's encoding/json. Nulls are
    what Go makes of them: a struct field set to null is dropped, a null list item or map value becomes its
    type's zero value. Fields the schema does not declare, and free-form objects, are left as they are."""
    pending: list[tuple[Any, str, str, str, str]] = [(obj, root, root.partition(".")[2], "", "")]
    while pending:
        value, type_name, struct, path, field = pending.pop()
        if not _fits(type_name, value):
            kind = _json_kind(value)
            if kind == "number" and type_name == "integer":
                kind = f"number {value}"
            where = f"Go struct field {struct}.{path}" if path else "Go value"
            raise WrongType(f"json: cannot unmarshal {kind} into {where} of type {_go_type(type_name, field)}")
        children: list[tuple[Any, str, str, str, str]] = []
        if type_name.startswith("[]") or type_name.startswith("map[string]"):
            item_type = type_name[2:] if type_name.startswith("[]") else type_name[len("map[string]"):]
            items = enumerate(value) if isinstance(value, list) else value.items()
            for key, item in items:
                if item is None:
                    value[key] = item = _zero(item_type)
                    if item is None:
                        continue
                children.append((item, item_type, struct, path, field))
        else:
            definition = definitions.get(type_name)
            if definition is None:
                continue
            own = type_name.partition(".")[2]
            for key in list(value):
                declared = definition.fields.get(key)
                if declared is None:
                    continue
                if value[key] is None:
                    del value[key]
                    continue
                children.append((value[key], declared[0], own, f"{path}.{key}" if path else key, key))
        pending.extend(reversed(children))
