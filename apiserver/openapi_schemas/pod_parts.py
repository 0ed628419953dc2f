"""Inner types of pod specs that used to be free-form: probe and lifecycle handlers, environment sources,
capabilities, the common volume sources and scheduling affinity (field names and types as upstream's), so the
published schemas of workloads are exact down to their leaves (kubectl computes three-way merges from them)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition

_KEY_TO_PATH = ("[]core.KeyToPath", "Keys to project as files; every key when empty.")

POD_PARTS: dict[str, Definition] = {
    "core.ExecAction": Definition("Run a command in the container.", {
        "command": ("[]string", "Command line; not run in a shell. Exit status 0 is success."),
    }),
    "core.HTTPHeader": Definition("A header of an HTTP probe.", {
        "name": ("string", "Header name."), "value": ("string", "Header value."),
    }, required=("name", "value")),
    "core.HTTPGetAction": Definition("An HTTP GET; a status in 200-399 is success.", {
        "path": ("string", "Path to request."), "port": ("IntOrString", "Port number or name."),
        "host": ("string", "Host to connect to; the pod IP by default."),
        "scheme": ("string", "HTTP (default) or HTTPS."),
        "httpHeaders": ("[]core.HTTPHeader", "Extra request headers."),
    }, required=("port",)),
    "core.TCPSocketAction": Definition("Open a TCP connection.", {
        "port": ("IntOrString", "Port number or name."), "host": ("string", "Host; the pod IP by default."),
    }, required=("port",)),
    "core.GRPCAction": Definition("A gRPC health check.", {
        "port": ("integer", "Port of the gRPC service."), "service": ("string", "Service name sent in the check."),
    }, required=("port",)),
    "core.SleepAction": Definition("Sleep before going on.", {
        "seconds": ("integer", "Seconds to sleep."),
    }, required=("seconds",)),
    "core.LifecycleHandler": Definition("An action of a lifecycle hook; exactly one is set.", {
        "exec": ("core.ExecAction", "Run a command in the container."),
        "httpGet": ("core.HTTPGetAction", "Send an HTTP GET."),
        "tcpSocket": ("core.TCPSocketAction", "Deprecated: open a TCP connection."),
        "sleep": ("core.SleepAction", "Sleep."),
    }),
    "core.ObjectFieldSelector": Definition("A field of the pod.", {
        "apiVersion": ("string", "Version of the field path's schema. Default v1."),
        "fieldPath": ("string", "Path of the field (metadata.name, status.podIP, ...)."),
    }, required=("fieldPath",)),
    "core.ResourceFieldSelector": Definition("A resource limit or request of a container.", {
        "containerName": ("string", "Container name (required for volumes)."),
        "resource": ("string", "limits.cpu, requests.memory, ..."),
        "divisor": ("Quantity", "Output format of the value. Default 1."),
    }, required=("resource",)),
    "core.ConfigMapKeySelector": Definition("A key of a ConfigMap.", {
        "name": ("string", "Name of the ConfigMap."), "key": ("string", "The key."),
        "optional": ("boolean", "Whether the ConfigMap or key may be missing."),
    }, required=("key",)),
    "core.SecretKeySelector": Definition("A key of a Secret.", {
        "name": ("string", "Name of the Secret."), "key": ("string", "The key."),
        "optional": ("boolean", "Whether the Secret or key may be missing."),
    }, required=("key",)),
    "core.ConfigMapEnvSource": Definition("A ConfigMap whose keys become variables.", {
        "name": ("string", "Name of the ConfigMap."), "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.SecretEnvSource": Definition("A Secret whose keys become variables.", {
        "name": ("string", "Name of the Secret."), "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.Capabilities": Definition("Linux capabilities to add and drop.", {
        "add": ("[]string", "Capabilities to add."), "drop": ("[]string", "Capabilities to drop."),
    }),
    "core.Sysctl": Definition("A namespaced kernel parameter.", {
        "name": ("string", "Name of the sysctl."), "value": ("string", "Value to set."),
    }, required=("name", "value")),
    "core.PodDNSConfigOption": Definition("A resolver option.", {
        "name": ("string", "Option name."), "value": ("string", "Option value."),
    }),
    "core.KeyToPath": Definition("A key projected as a file.", {
        "key": ("string", "The key."), "path": ("string", "Relative path of the file."),
        "mode": ("integer", "Mode bits of the file."),
    }, required=("key", "path")),
    "core.EmptyDirVolumeSource": Definition("A directory that lives as long as the pod.", {
        "medium": ("string", "\"\" (the node's disk) or Memory (a tmpfs)."),
        "sizeLimit": ("Quantity", "Most the volume may hold."),
    }),
    "core.HostPathVolumeSource": Definition("A file or directory of the node.", {
        "path": ("string", "Path on the node."),
        "type": ("string", "\"\", DirectoryOrCreate, Directory, FileOrCreate, File, Socket, CharDevice, "
                           "BlockDevice."),
    }, required=("path",)),
    "core.ConfigMapVolumeSource": Definition("Files from the keys of a ConfigMap.", {
        "name": ("string", "Name of the ConfigMap."), "items": _KEY_TO_PATH,
        "defaultMode": ("integer", "Mode bits of the files. Default 0644."),
        "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.SecretVolumeSource": Definition("Files from the keys of a Secret.", {
        "secretName": ("string", "Name of the Secret."), "items": _KEY_TO_PATH,
        "defaultMode": ("integer", "Mode bits of the files. Default 0644."),
        "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.PersistentVolumeClaimVolumeSource": Definition("A PersistentVolumeClaim of the pod's namespace.", {
        "claimName": ("string", "Name of the claim."), "readOnly": ("boolean", "Mount read-only."),
    }, required=("claimName",)),
    "core.DownwardAPIVolumeFile": Definition("A file with a pod field.", {
        "path": ("string", "Relative path of the file."),
        "fieldRef": ("core.ObjectFieldSelector", "A field of the pod."),
        "resourceFieldRef": ("core.ResourceFieldSelector", "A resource of a container."),
        "mode": ("integer", "Mode bits of the file."),
    }, required=("path",)),
    "core.DownwardAPIVolumeSource": Definition("Files with pod fields.", {
        "items": ("[]core.DownwardAPIVolumeFile", "The files."),
        "defaultMode": ("integer", "Mode bits of the files. Default 0644."),
    }),
    "core.DownwardAPIProjection": Definition("Pod fields projected as files.", {
        "items": ("[]core.DownwardAPIVolumeFile", "The files."),
    }),
    "core.ConfigMapProjection": Definition("A ConfigMap projected as files.", {
        "name": ("string", "Name of the ConfigMap."), "items": _KEY_TO_PATH,
        "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.SecretProjection": Definition("A Secret projected as files.", {
        "name": ("string", "Name of the Secret."), "items": _KEY_TO_PATH,
        "optional": ("boolean", "Whether it may be missing."),
    }),
    "core.ServiceAccountTokenProjection": Definition("A service account token projected as a file.", {
        "audience": ("string", "Intended audience of the token."),
        "expirationSeconds": ("integer", "Requested lifetime. Default 3600."),
        "path": ("string", "Relative path of the file."),
    }, required=("path",)),
    "core.VolumeProjection": Definition("One source of a projected volume.", {
        "configMap": ("core.ConfigMapProjection", "A ConfigMap."), "secret": ("core.SecretProjection", "A Secret."),
        "downwardAPI": ("core.DownwardAPIProjection", "Pod fields."),
        "serviceAccountToken": ("core.ServiceAccountTokenProjection", "A service account token."),
    }),
    "core.ProjectedVolumeSource": Definition("Several sources projected into one directory.", {
        "sources": ("[]core.VolumeProjection", "The sources."),
        "defaultMode": ("integer", "Mode bits of the files. Default 0644."),
    }),
    "core.NodeSelectorRequirement": Definition("A requirement on a node label or field.", {
        "key": ("string", "Label key."), "operator": ("string", "In, NotIn, Exists, DoesNotExist, Gt or Lt."),
        "values": ("[]string", "Values for In/NotIn (several), Gt/Lt (one)."),
    }, required=("key", "operator")),
    "core.NodeSelectorTerm": Definition("Requirements a node must all meet.", {
        "matchExpressions": ("[]core.NodeSelectorRequirement", "On node labels."),
        "matchFields": ("[]core.NodeSelectorRequirement", "On node fields (metadata.name)."),
    }),
    "core.NodeSelector": Definition("Terms a node must meet one of.", {
        "nodeSelectorTerms": ("[]core.NodeSelectorTerm", "The terms (ORed)."),
    }, required=("nodeSelectorTerms",)),
    "core.PreferredSchedulingTerm": Definition("A weighted preference for nodes.", {
        "weight": ("integer", "Weight 1-100."), "preference": ("core.NodeSelectorTerm", "Nodes preferred."),
    }, required=("weight", "preference")),
    "core.NodeAffinity": Definition("Rules about the labels of the node.", {
        "requiredDuringSchedulingIgnoredDuringExecution": ("core.NodeSelector", "Nodes the pod may go to."),
        "preferredDuringSchedulingIgnoredDuringExecution": ("[]core.PreferredSchedulingTerm", "Nodes preferred."),
    }),
    "core.PodAffinityTerm": Definition("Pods (by labels, in namespaces) on nodes of one topology domain.", {
        "labelSelector": ("meta.LabelSelector", "The pods."),
        "namespaces": ("[]string", "Namespaces of the pods; the pod's own by default."),
        "topologyKey": ("string", "Node label defining the domain."),
        "namespaceSelector": ("meta.LabelSelector", "Namespaces of the pods, by labels."),
    }, required=("topologyKey",)),
    "core.WeightedPodAffinityTerm": Definition("A weighted pod affinity preference.", {
        "weight": ("integer", "Weight 1-100."), "podAffinityTerm": ("core.PodAffinityTerm", "The term."),
    }, required=("weight", "podAffinityTerm")),
    "core.PodAffinity": Definition("Place the pod near pods matching a selector.", {
        "requiredDuringSchedulingIgnoredDuringExecution": ("[]core.PodAffinityTerm", "Terms that must hold."),
        "preferredDuringSchedulingIgnoredDuringExecution": ("[]core.WeightedPodAffinityTerm", "Preferences."),
    }),
    "core.PodAntiAffinity": Definition("Keep the pod away from pods matching a selector.", {
        "requiredDuringSchedulingIgnoredDuringExecution": ("[]core.PodAffinityTerm", "Terms that must hold."),
        "preferredDuringSchedulingIgnoredDuringExecution": ("[]core.WeightedPodAffinityTerm", "Preferences."),
    }),
    "core.ClientIPConfig": Definition("ClientIP session affinity settings.", {
        "timeoutSeconds": ("integer", "Seconds a client sticks to its endpoint (1-86400). Default 10800."),
    }),
    "core.SessionAffinityConfig": Definition("Session affinity settings of a Service.", {
        "clientIP": ("core.ClientIPConfig", "ClientIP affinity settings."),
    }),
    "core.TypedLocalObjectReference": Definition("An object of the same namespace, by kind and name.", {
        "apiGroup": ("string", "API group of the object; the core group when empty."),
        "kind": ("string", "Kind of the object."), "name": ("string", "Name of the object."),
    }, required=("kind", "name")),
    "core.TypedObjectReference": Definition("An object, by kind, name and namespace.", {
        "apiGroup": ("string", "API group of the object; the core group when empty."),
        "kind": ("string", "Kind of the object."), "name": ("string", "Name of the object."),
        "namespace": ("string", "Namespace of the object; the claim's by default."),
    }, required=("kind", "name")),
    "core.PersistentVolumeClaimCondition": Definition("A condition of a claim.", {
        "type": ("string", "Condition type."), "status": ("string", "True, False or Unknown."),
        "lastProbeTime": ("Time", "Last time the condition was probed."),
        "lastTransitionTime": ("Time", "Last time the status changed."),
        "reason": ("string", "Machine-readable reason."), "message": ("string", "Human-readable details."),
    }, required=("type", "status")),
    "core.NamespaceSpec": Definition("Desired state of a namespace.", {
        "finalizers": ("[]string", "What must finish before the namespace is removed (kubernetes)."),
    }),
}

# Fields of pods.py definitions that these types now describe: (definition, field) → type.
REPLACEMENTS: dict[tuple[str, str], str] = {
    ("core.EnvVarSource", "fieldRef"): "core.ObjectFieldSelector",
    ("core.EnvVarSource", "resourceFieldRef"): "core.ResourceFieldSelector",
    ("core.EnvVarSource", "configMapKeyRef"): "core.ConfigMapKeySelector",
    ("core.EnvVarSource", "secretKeyRef"): "core.SecretKeySelector",
    ("core.EnvFromSource", "configMapRef"): "core.ConfigMapEnvSource",
    ("core.EnvFromSource", "secretRef"): "core.SecretEnvSource",
    ("core.Volume", "emptyDir"): "core.EmptyDirVolumeSource",
    ("core.Volume", "hostPath"): "core.HostPathVolumeSource",
    ("core.Volume", "configMap"): "core.ConfigMapVolumeSource",
    ("core.Volume", "secret"): "core.SecretVolumeSource",
    ("core.Volume", "projected"): "core.ProjectedVolumeSource",
    ("core.Volume", "downwardAPI"): "core.DownwardAPIVolumeSource",
    ("core.Volume", "persistentVolumeClaim"): "core.PersistentVolumeClaimVolumeSource",
    ("core.Probe", "exec"): "core.ExecAction",
    ("core.Probe", "httpGet"): "core.HTTPGetAction",
    ("core.Probe", "tcpSocket"): "core.TCPSocketAction",
    ("core.Probe", "grpc"): "core.GRPCAction",
    ("core.Lifecycle", "postStart"): "core.LifecycleHandler",
    ("core.Lifecycle", "preStop"): "core.LifecycleHandler",
    ("core.SecurityContext", "capabilities"): "core.Capabilities",
    ("core.PodSecurityContext", "sysctls"): "[]core.Sysctl",
    ("core.PodDNSConfig", "options"): "[]core.PodDNSConfigOption",
    ("core.Affinity", "nodeAffinity"): "core.NodeAffinity",
    ("core.Affinity", "podAffinity"): "core.PodAffinity",
    ("core.Affinity", "podAntiAffinity"): "core.PodAntiAffinity",
    ("core.ServiceSpec", "sessionAffinityConfig"): "core.SessionAffinityConfig",
    ("core.PersistentVolumeClaimSpec", "dataSource"): "core.TypedLocalObjectReference",
    ("core.PersistentVolumeClaimSpec", "dataSourceRef"): "core.TypedObjectReference",
    ("core.PersistentVolumeClaimStatus", "conditions"): "[]core.PersistentVolumeClaimCondition",
    ("core.Namespace", "spec"): "core.NamespaceSpec",
}
