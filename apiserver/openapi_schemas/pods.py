"""core/v1 Pod and the types its spec is made of (shared with pod templates)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_CONTAINER_FIELDS = {
    "name": ("string", "Name of the container, unique within the pod (a DNS label). Cannot be updated."),
    "image": ("string", "Container image reference."),
    "command": ("[]string", "Entrypoint, replacing the image's ENTRYPOINT. $(VAR) references are expanded from "
                            "the container's environment."),
    "args": ("[]string", "Arguments to the entrypoint, replacing the image's CMD."),
    "workingDir": ("string", "Working directory; the image's default when empty."),
    "ports": ("[]core.ContainerPort", "Ports the container exposes (informational, except hostPort)."),
    "env": ("[]core.EnvVar", "Environment variables to set."),
    "envFrom": ("[]core.EnvFromSource", "Sources (ConfigMaps, Secrets) whose keys become environment variables."),
    "resources": ("core.ResourceRequirements", "Compute resources the container requests and is limited to."),
    "volumeMounts": ("[]core.VolumeMount", "Pod volumes to mount into the container's filesystem."),
    "livenessProbe": ("core.Probe", "Periodic check; the container is restarted when it fails."),
    "readinessProbe": ("core.Probe", "Periodic check; the pod is removed from service endpoints while it fails."),
    "startupProbe": ("core.Probe", "Check that must succeed before the other probes start."),
    "lifecycle": ("core.Lifecycle", "Actions run after the container starts and before it stops."),
    "terminationMessagePath": ("string", "File whose contents become the termination message."),
    "terminationMessagePolicy": ("string", "File, or FallbackToLogsOnError."),
    "imagePullPolicy": ("string", "Always, Never or IfNotPresent (default Always for :latest, else IfNotPresent)."),
    "securityContext": ("core.SecurityContext", "Security options of the container."),
    "stdin": ("boolean", "Whether the container keeps a stdin stream open."),
    "stdinOnce": ("boolean", "Whether stdin closes after the first attach."),
    "tty": ("boolean", "Whether the container gets a TTY."),
    "restartPolicy": ("string", "For init containers only: Always makes it a sidecar that keeps running."),
}

PODS: dict[str, Definition] = {
    "core.Pod": Definition(
        "A Pod is a group of containers scheduled together onto one node, sharing network and volumes.",
        kind_fields(("core.PodSpec", "Desired state of the pod: its containers, volumes and scheduling "
                                     "constraints."),
                    ("core.PodStatus", "Most recently observed state of the pod, written by the node agent and "
                                       "the scheduler. Read-only."))),
    "core.PodTemplateSpec": Definition("The pod a workload creates: metadata and spec.", {
        "metadata": ("meta.ObjectMeta", "Metadata of the created pods; labels must match the workload's "
                                        "selector."),
        "spec": ("core.PodSpec", "Spec of the created pods."),
    }),
    "core.PodSpec": Definition("Desired state of a pod.", {
        "containers": ("[]core.Container", "Containers of the pod; at least one. Cannot be added or removed "
                                           "after creation."),
        "initContainers": ("[]core.Container", "Containers run to completion, in order, before the others "
                                               "start."),
        "volumes": ("[]core.Volume", "Volumes the containers can mount."),
        "restartPolicy": ("string", "Always, OnFailure or Never. Default Always."),
        "terminationGracePeriodSeconds": ("integer", "Seconds between the stop signal and the kill. Default 30."),
        "activeDeadlineSeconds": ("integer", "Seconds the pod may run before it is failed."),
        "dnsPolicy": ("string", "ClusterFirst, ClusterFirstWithHostNet, Default or None. Default ClusterFirst."),
        "dnsConfig": ("core.PodDNSConfig", "DNS settings merged into those the dnsPolicy produces."),
        "nodeSelector": ("map[string]string", "Labels a node must have for the pod to be scheduled there."),
        "nodeName": ("string", "Node the pod is bound to; set by the scheduler (or by hand to skip it)."),
        "affinity": ("core.Affinity", "Node affinity and pod (anti-)affinity rules."),
        "tolerations": ("[]core.Toleration", "Taints the pod tolerates."),
        "schedulerName": ("string", "Scheduler that places the pod. Default default-scheduler."),
        "priorityClassName": ("string", "Name of the pod's PriorityClass."),
        "priority": ("integer", "Priority value, resolved from priorityClassName."),
        "serviceAccountName": ("string", "Service account the pod runs as."),
        "serviceAccount": ("string", "Deprecated alias of serviceAccountName."),
        "automountServiceAccountToken": ("boolean", "Whether the service account token is mounted."),
        "hostNetwork": ("boolean", "Use the node's network namespace."),
        "hostPID": ("boolean", "Use the node's PID namespace."),
        "hostIPC": ("boolean", "Use the node's IPC namespace."),
        "shareProcessNamespace": ("boolean", "Containers share one PID namespace."),
        "securityContext": ("core.PodSecurityContext", "Pod-level security attributes."),
        "imagePullSecrets": ("[]core.LocalObjectReference", "Secrets with registry credentials for pulling images."),
        "hostname": ("string", "Hostname of the pod; its name when empty."),
        "subdomain": ("string", "With a headless Service of this name, the pod gets a DNS name "
                                "<hostname>.<subdomain>.<namespace>.svc."),
        "hostAliases": ("[]core.HostAlias", "Extra /etc/hosts entries."),
        "enableServiceLinks": ("boolean", "Whether Service environment variables are injected. Default true."),
        "readinessGates": ("[]core.PodReadinessGate", "Extra conditions required for readiness."),
        "runtimeClassName": ("string", "RuntimeClass to run the pod with."),
        "preemptionPolicy": ("string", "PreemptLowerPriority or Never."),
        "overhead": ("map[string]Quantity", "Resources the pod's sandbox consumes on top of its containers."),
        "topologySpreadConstraints": ("[]core.TopologySpreadConstraint", "How pods spread across topology "
                                                                         "domains."),
        "ephemeralContainers": ("[]core.EphemeralContainer", "Debugging containers added to a running pod through "
                                                             "the ephemeralcontainers subresource; never restarted "
                                                             "or removed."),
    }, required=("containers",)),
    "core.Container": Definition("A container of a pod.", _CONTAINER_FIELDS, required=("name",)),
    "core.EphemeralContainer": Definition("A debugging container added to a running pod (kubectl debug).", {
        **{key: value for key, value in _CONTAINER_FIELDS.items()
           if key not in ("ports", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "restartPolicy")},
        "targetContainerName": ("string", "Container whose process namespace this one joins (the pod's own "
                                          "when empty)."),
    }, required=("name",)),
    "core.ContainerPort": Definition("A network port of a container.", {
        "containerPort": ("integer", "Port number on the pod's IP (1-65535)."),
        "name": ("string", "Name services can refer to (an IANA service name, unique in the pod)."),
        "protocol": ("string", "TCP, UDP or SCTP. Default TCP."),
        "hostPort": ("integer", "Port on the node forwarded to containerPort."),
        "hostIP": ("string", "Node IP the hostPort binds to."),
    }, required=("containerPort",)),
    "core.EnvVar": Definition("An environment variable.", {
        "name": ("string", "Variable name."),
        "value": ("string", "Value; $(VAR) references to earlier variables are expanded."),
        "valueFrom": ("core.EnvVarSource", "Source of the value when value is empty."),
    }, required=("name",)),
    "core.EnvVarSource": Definition("Where an environment variable's value comes from.", {
        "fieldRef": ("object", "A field of the pod (metadata.name, status.podIP, ...)."),
        "resourceFieldRef": ("object", "A resource limit or request of a container."),
        "configMapKeyRef": ("object", "A key of a ConfigMap."),
        "secretKeyRef": ("object", "A key of a Secret."),
    }),
    "core.EnvFromSource": Definition("A ConfigMap or Secret whose keys become variables.", {
        "prefix": ("string", "Prefix added to every key."),
        "configMapRef": ("object", "The ConfigMap."),
        "secretRef": ("object", "The Secret."),
    }),
    "core.ResourceRequirements": Definition("Compute resources of a container.", {
        "requests": ("map[string]Quantity", "Minimum resources the scheduler reserves (cpu, memory, ...)."),
        "limits": ("map[string]Quantity", "Maximum resources the container may use."),
    }),
    "core.VolumeMount": Definition("A volume mounted into a container.", {
        "name": ("string", "Name of the pod volume."),
        "mountPath": ("string", "Path in the container. Must not contain ':'."),
        "subPath": ("string", "Path within the volume to mount instead of its root."),
        "readOnly": ("boolean", "Mount read-only."),
        "mountPropagation": ("string", "None, HostToContainer or Bidirectional."),
    }, required=("name", "mountPath")),
    "core.Volume": Definition("A named volume of a pod; exactly one source is set.", {
        "name": ("string", "Volume name, unique in the pod (a DNS label)."),
        "emptyDir": ("object", "A directory that lives as long as the pod (medium Memory: a tmpfs)."),
        "hostPath": ("object", "A file or directory of the node."),
        "configMap": ("object", "Files from the keys of a ConfigMap."),
        "secret": ("object", "Files from the keys of a Secret."),
        "projected": ("object", "Several sources projected into one directory."),
        "downwardAPI": ("object", "Files with pod fields."),
        "persistentVolumeClaim": ("object", "A PersistentVolumeClaim."),
    }, required=("name",)),
    "core.Probe": Definition("A periodic health check of a container.", {
        "exec": ("object", "Run a command in the container; exit status 0 is success."),
        "httpGet": ("object", "HTTP GET; a status in 200-399 is success."),
        "tcpSocket": ("object", "Open a TCP connection."),
        "grpc": ("object", "gRPC health check."),
        "initialDelaySeconds": ("integer", "Seconds after start before the first probe."),
        "periodSeconds": ("integer", "Seconds between probes. Default 10."),
        "timeoutSeconds": ("integer", "Seconds before a probe times out. Default 1."),
        "successThreshold": ("integer", "Consecutive successes to count as healthy. Default 1."),
        "failureThreshold": ("integer", "Consecutive failures to count as unhealthy. Default 3."),
        "terminationGracePeriodSeconds": ("integer", "Grace period when a failed probe kills the container."),
    }),
    "core.Lifecycle": Definition("Hooks around a container's life.", {
        "postStart": ("object", "Run right after the container is created."),
        "preStop": ("object", "Run before the container is stopped."),
        "stopSignal": ("string", "Signal that stops the container."),
    }),
    "core.SecurityContext": Definition("Security options of a container.", {
        "runAsUser": ("integer", "UID to run as."), "runAsGroup": ("integer", "GID to run as."),
        "runAsNonRoot": ("boolean", "Refuse to start as UID 0."),
        "privileged": ("boolean", "Run privileged."),
        "readOnlyRootFilesystem": ("boolean", "Mount the root filesystem read-only."),
        "allowPrivilegeEscalation": ("boolean", "Whether a process may gain more privileges than its parent."),
        "capabilities": ("object", "Capabilities to add and drop."),
    }),
    "core.PodSecurityContext": Definition("Security options of all containers of a pod.", {
        "runAsUser": ("integer", "UID to run as."), "runAsGroup": ("integer", "GID to run as."),
        "runAsNonRoot": ("boolean", "Refuse to start containers as UID 0."),
        "fsGroup": ("integer", "Group owning the pod's volumes."),
        "supplementalGroups": ("[]integer", "Extra groups of the first process of each container."),
        "sysctls": ("[]object", "Namespaced sysctls to set."),
    }),
    "core.PodDNSConfig": Definition("DNS settings of a pod.", {
        "nameservers": ("[]string", "Name server IPs."), "searches": ("[]string", "Search domains."),
        "options": ("[]object", "resolver options (name, value)."),
    }),
    "core.Affinity": Definition("Scheduling affinity rules.", {
        "nodeAffinity": ("object", "Rules about the labels of the node."),
        "podAffinity": ("object", "Place the pod near pods matching a selector."),
        "podAntiAffinity": ("object", "Keep the pod away from pods matching a selector."),
    }),
    "core.Toleration": Definition("Lets a pod be scheduled on (and stay on) nodes with a matching taint.", {
        "key": ("string", "Taint key; empty with operator Exists matches every taint."),
        "operator": ("string", "Exists or Equal. Default Equal."),
        "value": ("string", "Taint value for Equal."),
        "effect": ("string", "NoSchedule, PreferNoSchedule or NoExecute; empty matches all."),
        "tolerationSeconds": ("integer", "With NoExecute: how long the pod stays after the taint appears."),
    }),
    "core.LocalObjectReference": Definition("Names an object in the same namespace.", {
        "name": ("string", "Name of the referent."),
    }),
    "core.HostAlias": Definition("An /etc/hosts entry.", {
        "ip": ("string", "IP address."), "hostnames": ("[]string", "Hostnames for the IP."),
    }, required=("ip",)),
    "core.PodReadinessGate": Definition("An extra pod condition required for readiness.", {
        "conditionType": ("string", "Type of the condition in status.conditions."),
    }, required=("conditionType",)),
    "core.TopologySpreadConstraint": Definition("How matching pods spread across a topology.", {
        "maxSkew": ("integer", "Largest allowed difference in matching pods between domains."),
        "topologyKey": ("string", "Node label that defines the domains."),
        "whenUnsatisfiable": ("string", "DoNotSchedule or ScheduleAnyway."),
        "labelSelector": ("meta.LabelSelector", "Pods counted in each domain."),
    }, required=("maxSkew", "topologyKey", "whenUnsatisfiable")),
    "core.PodStatus": Definition("Observed state of a pod.", {
        "phase": ("string", "Pending, Running, Succeeded, Failed or Unknown."),
        "conditions": ("[]core.PodCondition", "PodScheduled, Initialized, ContainersReady, Ready, ..."),
        "message": ("string", "Why the pod is in this state."),
        "reason": ("string", "Short CamelCase reason (e.g. Evicted)."),
        "hostIP": ("string", "IP of the node the pod runs on."),
        "hostIPs": ("[]object", "IPs of the node."),
        "podIP": ("string", "IP of the pod."),
        "podIPs": ("[]object", "IPs of the pod."),
        "startTime": ("Time", "When the node agent accepted the pod."),
        "initContainerStatuses": ("[]object", "Statuses of the init containers."),
        "containerStatuses": ("[]object", "Statuses of the containers: state, restarts, image, readiness, "
                                          "stopSignal."),
        "ephemeralContainerStatuses": ("[]object", "Statuses of the ephemeral containers."),
        "observedGeneration": ("integer", "The pod's metadata.generation this status was written for."),
        "qosClass": ("string", "Guaranteed, Burstable or BestEffort."),
    }),
    "core.PodCondition": Definition("A condition of a pod.", {
        "type": ("string", "Condition type."), "status": ("string", "True, False or Unknown."),
        "reason": ("string", "Machine-readable reason of the last transition."),
        "message": ("string", "Human-readable details."),
        "lastProbeTime": ("Time", "Last time the condition was probed."),
        "lastTransitionTime": ("Time", "Last time the status changed."),
        "observedGeneration": ("integer", "The pod's metadata.generation the condition was set for."),
    }, required=("type", "status")),
}
