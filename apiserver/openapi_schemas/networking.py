"""networking.k8s.io/v1 NetworkPolicy, Ingress and IngressClass."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_SELECTOR = "meta.LabelSelector"

NETWORKING: dict[str, Definition] = {
    "networking.NetworkPolicy": Definition(
        "A NetworkPolicy says which traffic the selected pods may receive and send.",
        kind_fields(("networking.NetworkPolicySpec", "The pods the policy applies to and the traffic it allows."))),
    "networking.NetworkPolicySpec": Definition("What a NetworkPolicy selects and allows.", {
        "podSelector": (_SELECTOR, "Pods of the namespace the policy applies to; an empty selector selects all."),
        "ingress": ("[]networking.NetworkPolicyIngressRule", "Allowed incoming traffic (each rule adds to the "
                                                             "others)."),
        "egress": ("[]networking.NetworkPolicyEgressRule", "Allowed outgoing traffic (each rule adds to the "
                                                           "others)."),
        "policyTypes": ("[]string", "Ingress and/or Egress: the directions the policy isolates. Defaults to "
                                    "Ingress, plus Egress when egress rules are given."),
    }),
    "networking.NetworkPolicyIngressRule": Definition("Traffic allowed into the selected pods.", {
        "ports": ("[]networking.NetworkPolicyPort", "Ports the traffic may reach; empty means all."),
        "from": ("[]networking.NetworkPolicyPeer", "Sources allowed; empty means any."),
    }),
    "networking.NetworkPolicyEgressRule": Definition("Traffic allowed out of the selected pods.", {
        "ports": ("[]networking.NetworkPolicyPort", "Ports the traffic may go to; empty means all."),
        "to": ("[]networking.NetworkPolicyPeer", "Destinations allowed; empty means any."),
    }),
    "networking.NetworkPolicyPort": Definition("A port (or port range) and protocol.", {
        "protocol": ("string", "TCP (default), UDP or SCTP."),
        "port": ("IntOrString", "A port number or a named container port; empty means every port."),
        "endPort": ("integer", "With a numeric port: the last port of the range."),
    }),
    "networking.NetworkPolicyPeer": Definition("A set of pods, namespaces or an IP block.", {
        "podSelector": (_SELECTOR, "Pods (in the policy's namespace, or in the namespaces namespaceSelector "
                                   "selects)."),
        "namespaceSelector": (_SELECTOR, "Namespaces whose pods match."),
        "ipBlock": ("networking.IPBlock", "An address range; may not be combined with the selectors."),
    }),
    "networking.IPBlock": Definition("A CIDR with optional exceptions.", {
        "cidr": ("string", "The range, e.g. 192.168.1.0/24."),
        "except": ("[]string", "Sub-ranges excluded from cidr."),
    }, required=("cidr",)),
    "networking.Ingress": Definition(
        "An Ingress routes external HTTP(S) traffic to Services by host and path; an ingress controller "
        "implements it.",
        kind_fields(("networking.IngressSpec", "Rules, default backend, TLS and the IngressClass."),
                    ("networking.IngressStatus", "Addresses the ingress controller reports. Read-only."))),
    "networking.IngressSpec": Definition("Routing of an Ingress.", {
        "ingressClassName": ("string", "Name of the IngressClass (the controller) that implements this Ingress."),
        "defaultBackend": ("networking.IngressBackend", "Where requests matching no rule go."),
        "tls": ("[]networking.IngressTLS", "TLS termination: hosts and the Secret holding their certificate."),
        "rules": ("[]networking.IngressRule", "Host and path rules."),
    }),
    "networking.IngressBackend": Definition("A Service port, or another resource, requests are sent to.", {
        "service": ("networking.IngressServiceBackend", "A Service of the Ingress's namespace."),
        "resource": ("core.TypedLocalObjectReference", "Another object of the namespace (not with service)."),
    }),
    "networking.IngressServiceBackend": Definition("A Service and one of its ports.", {
        "name": ("string", "Name of the Service."),
        "port": ("networking.ServiceBackendPort", "Port of the Service, by name or number."),
    }, required=("name",)),
    "networking.ServiceBackendPort": Definition("A Service port by name or number.", {
        "name": ("string", "Name of the port."),
        "number": ("integer", "Number of the port."),
    }),
    "networking.IngressTLS": Definition("TLS settings of some hosts.", {
        "hosts": ("[]string", "Hosts the certificate covers."),
        "secretName": ("string", "Secret with the certificate and key."),
    }),
    "networking.IngressRule": Definition("Routes of one host (or of every host).", {
        "host": ("string", "Fully qualified host name, or *.domain; empty matches every host."),
        "http": ("networking.HTTPIngressRuleValue", "The paths of the host."),
    }),
    "networking.HTTPIngressRuleValue": Definition("HTTP paths and their backends.", {
        "paths": ("[]networking.HTTPIngressPath", "Paths, each with a backend."),
    }, required=("paths",)),
    "networking.HTTPIngressPath": Definition("A path and the backend its requests go to.", {
        "path": ("string", "The path, starting with /."),
        "pathType": ("string", "Exact, Prefix or ImplementationSpecific."),
        "backend": ("networking.IngressBackend", "Where matching requests go."),
    }, required=("pathType", "backend")),
    "networking.IngressStatus": Definition("Observed state of an Ingress.", {
        "loadBalancer": ("networking.IngressLoadBalancerStatus", "Addresses traffic reaches the Ingress at."),
    }),
    "networking.IngressLoadBalancerStatus": Definition("Entry points of an Ingress.", {
        "ingress": ("[]networking.IngressLoadBalancerIngress", "IPs or host names."),
    }),
    "networking.IngressLoadBalancerIngress": Definition("One entry point.", {
        "ip": ("string", "IP address."),
        "hostname": ("string", "DNS name."),
        "ports": ("[]networking.IngressPortStatus", "Ports of the entry point."),
    }),
    "networking.IngressPortStatus": Definition("A port of an entry point.", {
        "port": ("integer", "Port number."),
        "protocol": ("string", "TCP, UDP or SCTP."),
        "error": ("string", "Problem with the port, if any."),
    }, required=("port", "protocol")),
    "networking.IngressClass": Definition(
        "An IngressClass names the controller that implements Ingresses of the class.",
        kind_fields(("networking.IngressClassSpec", "The controller and its parameters."))),
    "networking.IngressClassSpec": Definition("Controller of an IngressClass.", {
        "controller": ("string", "Domain-prefixed name of the controller, e.g. example.com/ingress-controller. "
                                 "Immutable."),
        "parameters": ("networking.IngressClassParametersReference", "An object configuring the controller."),
    }),
    "networking.IngressClassParametersReference": Definition("A reference to a parameters object.", {
        "apiGroup": ("string", "API group of the object."),
        "kind": ("string", "Kind of the object."),
        "name": ("string", "Name of the object."),
        "scope": ("string", "Cluster (default) or Namespace."),
        "namespace": ("string", "Namespace of the object when scope is Namespace."),
    }, required=("kind", "name")),
    "core.TypedLocalObjectReference": Definition("An object of the same namespace.", {
        "apiGroup": ("string", "API group of the object; empty for the core group."),
        "kind": ("string", "Kind of the object."),
        "name": ("string", "Name of the object."),
    }, required=("kind", "name")),
}
