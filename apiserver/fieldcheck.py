"""Unknown-field detection for `fieldValidation=Strict|Warn` (known fields of the shapes we know)."""
from __future__ import annotations

from typing import Any

OBJECT_META = {"name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
               "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
               "ownerReferences", "finalizers", "managedFields"}
POD_SPEC = {"volumes", "initContainers", "containers", "ephemeralContainers", "restartPolicy",
            "terminationGracePeriodSeconds", "activeDeadlineSeconds", "dnsPolicy", "nodeSelector",
            "serviceAccountName", "serviceAccount", "automountServiceAccountToken", "nodeName", "hostNetwork",
            "hostPID", "hostIPC", "shareProcessNamespace", "securityContext", "imagePullSecrets", "hostname",
            "subdomain", "affinity", "schedulerName", "tolerations", "hostAliases", "priorityClassName", "priority",
            "dnsConfig", "readinessGates", "runtimeClassName", "enableServiceLinks", "preemptionPolicy", "overhead",
            "topologySpreadConstraints", "setHostnameAsFQDN", "os", "hostUsers", "schedulingGates",
            "resourceClaims", "resources", "hostnameOverride"}
CONTAINER = {"name", "image", "command", "args", "workingDir", "ports", "envFrom", "env", "resources",
             "resizePolicy", "restartPolicy", "restartPolicyRules", "volumeMounts", "volumeDevices",
             "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "terminationMessagePath",
             "terminationMessagePolicy", "imagePullPolicy", "securityContext", "stdin", "stdinOnce", "tty"}
CONTAINER_PORT = {"name", "hostPort", "containerPort", "protocol", "hostIP"}
SERVICE_SPEC = {"ports", "selector", "clusterIP", "clusterIPs", "type", "externalIPs", "sessionAffinity",
                "loadBalancerIP", "loadBalancerSourceRanges", "externalName", "externalTrafficPolicy",
                "healthCheckNodePort", "publishNotReadyAddresses", "sessionAffinityConfig", "ipFamilies",
                "ipFamilyPolicy", "allocateLoadBalancerNodePorts", "loadBalancerClass", "internalTrafficPolicy",
                "trafficDistribution"}
SERVICE_PORT = {"name", "protocol", "appProtocol", "port", "targetPort", "nodePort"}
WORKLOAD_SPEC = {
    "Deployment": {"replicas", "selector", "template", "strategy", "minReadySeconds", "revisionHistoryLimit", "paused",
                   "progressDeadlineSeconds"},
    "ReplicaSet": {"replicas", "minReadySeconds", "selector", "template"},
    "ReplicationController": {"replicas", "minReadySeconds", "selector", "template"},
}
TOP_LEVEL = {
    "Pod": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Node": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Namespace": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Lease": {"apiVersion", "kind", "metadata", "spec"},
    "ConfigMap": {"apiVersion", "kind", "metadata", "data", "binaryData", "immutable"},
    "Secret": {"apiVersion", "kind", "metadata", "data", "stringData", "type", "immutable"},
    "Service": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Endpoints": {"apiVersion", "kind", "metadata", "subsets"},
    "EndpointSlice": {"apiVersion", "kind", "metadata", "addressType", "endpoints", "ports"},
    "Deployment": {"apiVersion", "kind", "metadata", "spec", "status"},
    "ReplicaSet": {"apiVersion", "kind", "metadata", "spec", "status"},
    "ReplicationController": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Event": {"apiVersion", "kind", "metadata", "involvedObject", "reason", "message", "source", "firstTimestamp",
              "lastTimestamp", "count", "type", "eventTime", "series", "action", "related", "reportingComponent",
              "reportingInstance"},
}


def _unknown(obj: Any, known: set[str], path: str) -> list[str]:
    if not isinstance(obj, dict):
        return []
    # "$patch", "$setElementOrder/..." and the like are strategic merge directives, not fields.
    return [f"{path}.{key}" if path else key for key in obj if key not in known and not key.startswith("$")]


def unknown_fields(kind: str, obj: Any) -> list[str]:
    """Dotted paths of fields the kind does not declare (only for the parts whose shape we know)."""
    if not isinstance(obj, dict) or kind not in TOP_LEVEL:
        return []
    found = _unknown(obj, TOP_LEVEL[kind], "")
    found += _unknown(obj.get("metadata"), OBJECT_META, "metadata")
    if kind == "Service" and isinstance(obj.get("spec"), dict):
        found += _unknown(obj["spec"], SERVICE_SPEC, "spec")
        for index, port in enumerate(obj["spec"].get("ports") or []):
            found += _unknown(port, SERVICE_PORT, f"spec.ports[{index}]")
    if kind == "Pod" and isinstance(obj.get("spec"), dict):
        spec = obj["spec"]
        found += _unknown(spec, POD_SPEC, "spec")
        for list_name in ("initContainers", "containers"):
            for index, container in enumerate(spec.get(list_name) or []):
                path = f"spec.{list_name}[{index}]"
                found += _unknown(container, CONTAINER, path)
                if isinstance(container, dict):
                    for port_index, port in enumerate(container.get("ports") or []):
                        found += _unknown(port, CONTAINER_PORT, f"{path}.ports[{port_index}]")
    if kind in WORKLOAD_SPEC and isinstance(obj.get("spec"), dict):
        found += _unknown(obj["spec"], WORKLOAD_SPEC[kind], "spec")
        template = obj["spec"].get("template")
        if isinstance(template, dict):
            found += _unknown(template, {"metadata", "spec"}, "spec.template")
            found += _unknown(template.get("metadata"), OBJECT_META, "spec.template.metadata")
            found += [f"spec.template.{path}" for path in unknown_fields("Pod", {"spec": template.get("spec")})]
    return found
