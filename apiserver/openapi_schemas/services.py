"""core/v1 Service."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

SERVICES: dict[str, Definition] = {
    "core.Service": Definition(
        "A Service gives a set of pods (chosen by a selector) one stable virtual IP and DNS name, load-balanced "
        "by the node proxies.",
        kind_fields(("core.ServiceSpec", "Desired behaviour: ports, selector, type and IP settings."),
                    ("core.ServiceStatus", "Most recently observed state (load balancer). Read-only."))),
    "core.ServiceSpec": Definition("Desired behaviour of a Service.", {
        "ports": ("[]core.ServicePort", "Ports the Service exposes."),
        "selector": ("map[string]string", "Pods receiving the traffic. Without it, Endpoints are managed by hand."),
        "type": ("string", "ClusterIP (default), NodePort, LoadBalancer or ExternalName."),
        "clusterIP": ("string", "Virtual IP, allocated when empty; None makes the Service headless. Immutable."),
        "clusterIPs": ("[]string", "Virtual IPs (the first equals clusterIP)."),
        "externalIPs": ("[]string", "Extra IPs the node proxies accept traffic for."),
        "externalName": ("string", "DNS name an ExternalName Service is an alias of."),
        "sessionAffinity": ("string", "ClientIP or None (default)."),
        "sessionAffinityConfig": ("object", "ClientIP affinity timeout."),
        "externalTrafficPolicy": ("string", "Cluster (default) or Local for NodePort/LoadBalancer traffic."),
        "internalTrafficPolicy": ("string", "Cluster (default) or Local for cluster traffic."),
        "healthCheckNodePort": ("integer", "Node port of the health check with externalTrafficPolicy Local."),
        "publishNotReadyAddresses": ("boolean", "Publish addresses of pods that are not ready."),
        "ipFamilies": ("[]string", "IPv4 and/or IPv6."),
        "ipFamilyPolicy": ("string", "SingleStack, PreferDualStack or RequireDualStack."),
        "loadBalancerIP": ("string", "Requested load balancer IP (deprecated)."),
        "loadBalancerSourceRanges": ("[]string", "Client CIDRs allowed through the load balancer."),
        "loadBalancerClass": ("string", "Load balancer implementation."),
        "allocateLoadBalancerNodePorts": ("boolean", "Whether LoadBalancer Services get node ports. Default true."),
        "trafficDistribution": ("string", "Preference for routing to topologically close endpoints."),
    }),
    "core.ServicePort": Definition("A port of a Service.", {
        "name": ("string", "Name of the port; required when there are several."),
        "protocol": ("string", "TCP (default), UDP or SCTP."),
        "appProtocol": ("string", "Application protocol hint."),
        "port": ("integer", "Port of the Service."),
        "targetPort": ("IntOrString", "Port (number or container port name) on the pods. Default: port."),
        "nodePort": ("integer", "Port on every node for NodePort/LoadBalancer, allocated when empty."),
    }, required=("port",)),
    "core.ServiceStatus": Definition("Observed state of a Service.", {
        "loadBalancer": ("object", "Ingress points of the load balancer."),
        "conditions": ("[]object", "Conditions of the Service."),
    }),
}
