"""The other kinds we serve, documented at the top level (their inner shapes are free-form objects)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

CLUSTER: dict[str, Definition] = {
    "core.Namespace": Definition("A Namespace scopes names; deleting it deletes everything in it.",
                                 kind_fields(("object", "finalizers that must finish before the namespace goes."),
                                             ("object", "phase: Active or Terminating."))),
    "core.Node": Definition("A Node is a machine running the node agent; pods are scheduled onto nodes.",
                            kind_fields(("object", "podCIDR(s), taints, unschedulable."),
                                        ("object", "capacity, allocatable, conditions, addresses, nodeInfo."))),
    "core.ConfigMap": Definition("A ConfigMap holds configuration for pods as string or binary values.",
                                 kind_fields(data=("map[string]string", "UTF-8 values by key."),
                                             binaryData=("map[string]string", "Base64-encoded binary values by key."),
                                             immutable=("boolean", "When true, data can no longer change."))),
    "core.Secret": Definition("A Secret holds sensitive values (base64-encoded in data).",
                              kind_fields(data=("map[string]string", "Base64-encoded values by key."),
                                          stringData=("map[string]string", "Write-only plain values, merged into "
                                                                           "data."),
                                          type=("string", "Opaque (default) or a typed secret such as "
                                                          "kubernetes.io/tls."),
                                          immutable=("boolean", "When true, data can no longer change."))),
    "core.Endpoints": Definition("The addresses backing a Service (maintained by the endpoints controller).",
                                 kind_fields(subsets=("[]object", "Groups of addresses sharing ports."))),
    "core.Event": Definition("A report of something that happened to an object.",
                             kind_fields(involvedObject=("object", "The object the event is about."),
                                         reason=("string", "Short CamelCase reason."),
                                         message=("string", "Human-readable description."),
                                         type=("string", "Normal or Warning."),
                                         count=("integer", "Times it happened."),
                                         firstTimestamp=("Time", "First occurrence."),
                                         lastTimestamp=("Time", "Latest occurrence."),
                                         source=("object", "Component and host that reported it."))),
    "core.ResourceQuota": Definition("Limits the total resources and object counts of a namespace.",
                                     kind_fields(("object", "hard limits, scopes."), ("object", "hard and used."))),
    "coordination.Lease": Definition("A Lease records who holds a lock and until when (node heartbeats).",
                                     kind_fields(("object", "holderIdentity, leaseDurationSeconds, renewTime."))),
    "discovery.EndpointSlice": Definition("A slice of the endpoints of a Service.",
                                          kind_fields(addressType=("string", "IPv4, IPv6 or FQDN."),
                                                      endpoints=("[]object", "The endpoints."),
                                                      ports=("[]object", "Ports of every endpoint."))),
}
