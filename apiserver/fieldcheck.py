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
TOP_LEVEL = {
    "Pod": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Node": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Namespace": {"apiVersion", "kind", "metadata", "spec", "status"},
    "Lease": {"apiVersion", "kind", "metadata", "spec"},
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
    return found
