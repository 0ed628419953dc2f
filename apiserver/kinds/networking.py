"""networking.k8s.io/v1 NetworkPolicy, Ingress and IngressClass: defaulting, validation (upstream's
networking validation and messages), status, columns. Objects only: NetworkPolicies are enforced by the
node agent, Ingresses by whatever ingress controller the cluster runs."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from apiserver.errors import FieldError, GoLiteral, forbidden, invalid, not_supported, required
from apiserver.kinds.base import Obj, ResourceInfo, Strategy
from apiserver.kinds.field_rules import (CIDR_MESSAGE, cidr, dns1035_label, domain_prefixed_path, is_int,
                                         path_segment_problems, port_name_problems, port_number_problems,
                                         validate_label_selector,
                                         wildcard_dns1123_subdomain)
from apiserver.kinds.workload_tables import selector_string
from apiserver.tables import AGE_DESCRIPTION, NAME_DESCRIPTION, Column, Row, TableSpec, age
from apiserver.validation import dns1123_label, dns1123_subdomain, is_ip, validate_meta_update

GROUP = "networking.k8s.io"
NETWORK_POLICY_INFO = ResourceInfo(GROUP, "v1", "NetworkPolicy", "networkpolicies", "networkpolicy", True,
                                   short_names=("netpol",))
INGRESS_INFO = ResourceInfo(GROUP, "v1", "Ingress", "ingresses", "ingress", True, short_names=("ing",),
                            subresources=("status",))
INGRESS_CLASS_INFO = ResourceInfo(GROUP, "v1", "IngressClass", "ingressclasses", "ingressclass", False)

NETWORK_POLICY_PROTOCOLS = ["TCP", "UDP", "SCTP"]
POLICY_TYPES = ["Ingress", "Egress"]
PATH_TYPES = ["Exact", "ImplementationSpecific", "Prefix"]
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")
INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
_MAX_CONTROLLER_LENGTH = 250


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


@dataclass
class _SpecGenerationStrategy(Strategy):
    """Kinds whose generation follows spec changes only (networking strategies)."""

    def spec_changed(self, new: Obj, old: Obj) -> bool:
        return new.get("spec") != old.get("spec")


# --- NetworkPolicy -----------------------------------------------------------------------------------
def _validate_network_policy_port(port: Any, path: str) -> list[FieldError]:
    if not isinstance(port, dict):
        return [invalid(path, port, "must be a network policy port")]
    errors: list[FieldError] = []
    protocol = port.get("protocol")
    if protocol is not None and protocol not in NETWORK_POLICY_PROTOCOLS:
        errors.append(not_supported(f"{path}.protocol", protocol, NETWORK_POLICY_PROTOCOLS))
    number, end_port = port.get("port"), port.get("endPort")
    if number is not None:
        if is_int(number):
            errors += [invalid(f"{path}.port", number, problem) for problem in port_number_problems(number)]
            if end_port is not None:
                if is_int(end_port) and end_port < number:
                    errors.append(invalid(f"{path}.endPort", end_port, "must be greater than or equal to `port`"))
                errors += [invalid(f"{path}.endPort", end_port, problem) for problem in port_number_problems(end_port)]
        else:
            if end_port is not None:
                errors.append(invalid(f"{path}.endPort", end_port, "may not be specified when `port` is non-numeric"))
            errors += [invalid(f"{path}.port", number, problem) for problem in port_name_problems(str(number))]
    elif end_port is not None:
        errors.append(invalid(f"{path}.endPort", end_port, "may not be specified when `port` is not specified"))
    return errors


def _validate_ip_block(block: Any, path: str, allowed: set[str]) -> list[FieldError]:
    if not isinstance(block, dict):
        return [invalid(path, block, "must be an IP block")]
    value = block.get("cidr") or ""
    if not value:
        return [required(f"{path}.cidr", "")]
    errors: list[FieldError] = []
    network = cidr(value)
    if network is None and value not in allowed:
        errors.append(invalid(f"{path}.cidr", value, CIDR_MESSAGE))
    if network is None:
        return errors
    for index, except_value in enumerate(_list(block.get("except"))):
        except_path = f"{path}.except[{index}]"
        inner = cidr(except_value)
        if inner is None:
            if except_value not in allowed:
                errors.append(invalid(except_path, except_value, CIDR_MESSAGE))
            continue
        if inner.version != network.version or inner.network_address not in network or \
                network.prefixlen >= inner.prefixlen:
            errors.append(invalid(except_path, except_value, "must be a strict subset of `cidr`"))
    return errors


def _validate_peer(peer: Any, path: str, allowed_cidrs: set[str], allow_invalid: bool) -> list[FieldError]:
    if not isinstance(peer, dict):
        return [invalid(path, peer, "must be a network policy peer")]
    errors: list[FieldError] = []
    peers = 0
    for key in ("podSelector", "namespaceSelector"):
        if peer.get(key) is not None:
            peers += 1
            errors += validate_label_selector(peer[key], f"{path}.{key}", allow_invalid)
    if peer.get("ipBlock") is not None:
        peers += 1
        errors += _validate_ip_block(peer["ipBlock"], f"{path}.ipBlock", allowed_cidrs)
    if peers == 0:
        errors.append(required(path, "must specify a peer"))
    elif peers > 1 and peer.get("ipBlock") is not None:
        errors.append(forbidden(path, "may not specify both ipBlock and another peer"))
    return errors


def _policy_cidrs(spec: Obj) -> set[str]:
    """Every CIDR a stored policy holds: an update may keep ones that fail today's validation."""
    found = set()
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for rule in _list(spec.get(direction)):
            for peer in _list(_dict(rule).get(peers_key)):
                block = _dict(_dict(peer).get("ipBlock"))
                if block.get("cidr"):
                    found.add(block["cidr"])
                found.update(str(value) for value in _list(block.get("except")))
    return found


def validate_network_policy_spec(spec: Any, allowed_cidrs: set[str] = frozenset(),
                                 allow_invalid: bool = False) -> list[FieldError]:
    spec = _dict(spec)
    errors = validate_label_selector(spec.get("podSelector"), "spec.podSelector", allow_invalid)
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for index, rule in enumerate(_list(spec.get(direction))):
            rule = _dict(rule)
            rule_path = f"spec.{direction}[{index}]"
            for port_index, port in enumerate(_list(rule.get("ports"))):
                errors += _validate_network_policy_port(port, f"{rule_path}.ports[{port_index}]")
            for peer_index, peer in enumerate(_list(rule.get(peers_key))):
                errors += _validate_peer(peer, f"{rule_path}.{peers_key}[{peer_index}]", allowed_cidrs,
                                         allow_invalid)
    policy_types = _list(spec.get("policyTypes"))
    if len(policy_types) > len(POLICY_TYPES):
        rendered = "[]networking.PolicyType{" + ", ".join(f'"{t}"' for t in policy_types) + "}"
        errors.append(invalid("spec.policyTypes", GoLiteral(f"&{rendered}"),
                              "may not specify more than two policyTypes"))
        return errors
    for index, policy_type in enumerate(policy_types):
        if policy_type not in POLICY_TYPES:
            errors.append(not_supported(f"spec.policyTypes[{index}]", policy_type, POLICY_TYPES))
    return errors


NETWORK_POLICY_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Pod-Selector", "string", "", "Selects the pods to which this NetworkPolicy object applies.  The array "
           "of ingress rules is applied to any pods selected by this field. Multiple network policies can select "
           "the same set of pods.  In this case, the ingress rules for each are combined additively. This field "
           "is NOT optional and follows standard label selector semantics. An empty podSelector matches all pods "
           "in this namespace."),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def format_label_selector(selector: Any) -> str:
    """metav1.FormatLabelSelector: "<none>" for an empty selector."""
    text = selector_string(selector) if isinstance(selector, dict) else ""
    return text or "<none>"


@dataclass
class NetworkPolicyStrategy(_SpecGenerationStrategy):
    info: ResourceInfo = NETWORK_POLICY_INFO

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("podSelector", {})
        for direction in ("ingress", "egress"):
            for rule in _list(spec.get(direction)):
                for port in _list(_dict(rule).get("ports")):
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
        if not spec.get("policyTypes"):
            spec["policyTypes"] = ["Ingress", "Egress"] if spec.get("egress") else ["Ingress"]

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_network_policy_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        old_spec = _dict(old.get("spec"))
        allow_invalid = bool(validate_label_selector(old_spec.get("podSelector"), "spec.podSelector"))
        return Strategy.validate(self, new) + validate_meta_update(new, old) + \
            validate_network_policy_spec(new.get("spec"), _policy_cidrs(old_spec), allow_invalid)

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(NETWORK_POLICY_COLUMNS, lambda obj: Row([
            obj["metadata"]["name"], format_label_selector(_dict(obj.get("spec")).get("podSelector")),
            age(obj["metadata"].get("creationTimestamp"), now)]))


# --- Ingress -------------------------------------------------------------------------------------------
def _validate_backend(backend: Any, path: str, relaxed_names: bool) -> list[FieldError]:
    backend = _dict(backend)
    resource, service = backend.get("resource"), backend.get("service")
    if resource is not None and service is not None:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if resource is not None:
        return _validate_typed_reference(resource, f"{path}.resource")
    if service is None:
        return [invalid(path, "", "resource or service backend is required")]
    service = _dict(service)
    errors: list[FieldError] = []
    name = service.get("name") or ""
    if not name:
        errors.append(required(f"{path}.service.name", ""))
    else:
        check = dns1123_label if relaxed_names else dns1035_label
        errors += [invalid(f"{path}.service.name", name, problem) for problem in check(name)]
    port = _dict(service.get("port"))
    port_name, port_number = port.get("name") or "", port.get("number") or 0
    if port_name and port_number:
        errors.append(invalid(path, "", "cannot set both port name & port number"))
    elif port_name:
        errors += [invalid(f"{path}.service.port.name", port_name, problem)
                   for problem in port_name_problems(port_name)]
    elif port_number:
        errors += [invalid(f"{path}.service.port.number", port_number, problem)
                   for problem in port_number_problems(port_number)]
    else:
        errors.append(required(path, "port name or number is required"))
    return errors


def _validate_typed_reference(reference: Any, path: str) -> list[FieldError]:
    reference = _dict(reference)
    errors: list[FieldError] = []
    if reference.get("apiGroup") is not None:
        errors += [invalid(f"{path}.apiGroup", reference["apiGroup"], problem)
                   for problem in dns1123_subdomain(str(reference["apiGroup"]))]
    for key in ("kind", "name"):
        value = reference.get(key) or ""
        if not value:
            errors.append(required(f"{path}.{key}", ""))
        else:
            errors += [invalid(f"{path}.{key}", value, problem) for problem in path_segment_problems(value)]
    return errors


def _validate_http_path(http_path: Any, path: str, relaxed_names: bool) -> list[FieldError]:
    http_path = _dict(http_path)
    path_type = http_path.get("pathType")
    if path_type is None:
        return [required(f"{path}.pathType", "pathType must be specified")]
    value = http_path.get("path") or ""
    errors: list[FieldError] = []
    if path_type in ("Exact", "Prefix"):
        if not value.startswith("/"):
            errors.append(invalid(f"{path}.path", value, "must be an absolute path"))
        if value:
            errors += [invalid(f"{path}.path", value, f"must not contain '{sequence}'")
                       for sequence in _INVALID_PATH_SEQUENCES if sequence in value]
            errors += [invalid(f"{path}.path", value, f"cannot end with '{suffix}'")
                       for suffix in _INVALID_PATH_SUFFIXES if value.endswith(suffix)]
    elif path_type == "ImplementationSpecific":
        if value and not value.startswith("/"):
            errors.append(invalid(f"{path}.path", value, "must be an absolute path"))
    else:
        errors.append(not_supported(f"{path}.pathType", path_type, PATH_TYPES))
    return errors + _validate_backend(http_path.get("backend"), f"{path}.backend", relaxed_names)


def _validate_rule_value(rule: Obj, path: str, relaxed_names: bool) -> list[FieldError]:
    http = rule.get("http")
    if http is None:
        return []
    paths = _list(_dict(http).get("paths"))
    errors = [] if paths else [required(f"{path}.http.paths", "")]
    for index, http_path in enumerate(paths):
        errors += _validate_http_path(http_path, f"{path}.http.paths[{index}]", relaxed_names)
    return errors


def _go_rules(rules: Any) -> GoLiteral:
    return GoLiteral("[]networking.IngressRule(nil)" if rules is None else "[]networking.IngressRule{}")


def validate_ingress_spec(spec: Any, old: Obj | None = None) -> list[FieldError]:
    spec = _dict(spec)
    old_spec = _dict((old or {}).get("spec"))
    relaxed = _relaxed_service_names(old_spec)
    allow_wildcard_rules = any("*" in (_dict(rule).get("host") or "") and
                               _validate_rule_value(_dict(rule), "", False) for rule in _list(old_spec.get("rules")))
    allow_invalid_secrets = any(_secret_name_problems(_dict(tls).get("secretName") or "")
                                for tls in _list(old_spec.get("tls")))
    errors: list[FieldError] = []
    rules = spec.get("rules")
    if not rules and spec.get("defaultBackend") is None:
        errors.append(invalid("spec", _go_rules(rules), "either `defaultBackend` or `rules` must be specified"))
    if spec.get("defaultBackend") is not None:
        errors += _validate_backend(spec["defaultBackend"], "spec.defaultBackend", relaxed)
    for index, rule in enumerate(_list(rules)):
        rule = _dict(rule)
        path = f"spec.rules[{index}]"
        host = rule.get("host") or ""
        wildcard = False
        if host:
            if is_ip(host):
                errors.append(invalid(f"{path}.host", host, "must be a DNS name, not an IP address"))
            if "*" in host:
                errors += [invalid(f"{path}.host", host, problem) for problem in wildcard_dns1123_subdomain(host)]
                wildcard = True
            else:
                errors += [invalid(f"{path}.host", host, problem) for problem in dns1123_subdomain(host)]
        if not wildcard or not allow_wildcard_rules:
            errors += _validate_rule_value(rule, path, relaxed)
    for tls_index, tls in enumerate(_list(spec.get("tls"))):
        tls = _dict(tls)
        for host_index, host in enumerate(_list(tls.get("hosts"))):
            where = f"spec.tls[{tls_index}].hosts[{host_index}]"
            check = wildcard_dns1123_subdomain if "*" in str(host) else dns1123_subdomain
            errors += [invalid(where, host, problem) for problem in check(str(host))]
        if not allow_invalid_secrets:
            secret = tls.get("secretName") or ""
            errors += [invalid(f"spec.tls[{tls_index}].secretName", secret, problem)
                       for problem in _secret_name_problems(secret)]
    class_name = spec.get("ingressClassName")
    if class_name is not None:
        errors += [invalid("spec.ingressClassName", class_name, problem)
                   for problem in dns1123_subdomain(str(class_name))]
    return errors


def _secret_name_problems(name: str) -> list[str]:
    return dns1123_subdomain(name) if name else []


def _relaxed_service_names(old_spec: Obj) -> bool:
    """Service names valid as DNS labels but not DNS-1035 labels stay accepted on stored Ingresses."""
    names = [_dict(_dict(old_spec.get("defaultBackend")).get("service")).get("name")]
    for rule in _list(old_spec.get("rules")):
        for http_path in _list(_dict(_dict(rule).get("http")).get("paths")):
            names.append(_dict(_dict(_dict(http_path).get("backend")).get("service")).get("name"))
    return any(name and not dns1123_label(name) and dns1035_label(name) for name in names)


def validate_load_balancer_status(status: Any, old_status: Any) -> list[FieldError]:
    old_ips = {entry.get("ip") for entry in _list(_dict(_dict(old_status).get("loadBalancer")).get("ingress"))
               if isinstance(entry, dict) and entry.get("ip")}
    errors: list[FieldError] = []
    for index, entry in enumerate(_list(_dict(_dict(status).get("loadBalancer")).get("ingress"))):
        entry = _dict(entry)
        path = f"status.loadBalancer.ingress[{index}]"
        if entry.get("ip") and not is_ip(entry["ip"]) and entry["ip"] not in old_ips:
            errors.append(invalid(f"{path}.ip", entry["ip"], "must be a valid IP address, (e.g. 10.9.8.7 or "
                                                             "2001:db8::ffff)"))
        hostname = entry.get("hostname")
        if hostname:
            errors += [invalid(f"{path}.hostname", hostname, problem) for problem in dns1123_subdomain(hostname)]
            if is_ip(hostname):
                errors.append(invalid(f"{path}.hostname", hostname, "must be a DNS name, not an IP address"))
    return errors


INGRESS_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Class", "string", "", "The name of the IngressClass resource that should be used for additional "
           "configuration"),
    Column("Hosts", "string", "", "Hosts that incoming requests are matched against before the ingress rule"),
    Column("Address", "string", "", "Address is a list containing ingress points for the load-balancer"),
    Column("Ports", "string", "", "Ports of TLS configurations that open"),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def format_hosts(rules: list) -> str:
    """kubectl's formatHosts: up to three hosts, then "+ N more..."; "*" when no rule names one."""
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
        host = _dict(rule).get("host") or ""
        if not more and host:
            hosts.append(host)
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def load_balancer_addresses(status: Any, wide: bool = True) -> str:
    found = sorted({entry.get("ip") or entry.get("hostname") for entry in
                    _list(_dict(_dict(status).get("loadBalancer")).get("ingress"))
                    if isinstance(entry, dict) and (entry.get("ip") or entry.get("hostname"))})
    text = ",".join(found)
    return text if wide or len(text) <= 16 else text[:13] + "..."


def ingress_row(ingress: Obj, now: datetime.datetime) -> Row:
    spec = _dict(ingress.get("spec"))
    class_name = spec.get("ingressClassName")
    return Row([ingress["metadata"]["name"], "<none>" if class_name is None else class_name,
                format_hosts(_list(spec.get("rules"))), load_balancer_addresses(ingress.get("status")),
                "80, 443" if spec.get("tls") else "80", age(ingress["metadata"].get("creationTimestamp"), now)])


@dataclass
class IngressStrategy(_SpecGenerationStrategy):
    info: ResourceInfo = INGRESS_INFO
    has_status: bool = True

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict):
            status.setdefault("loadBalancer", {})

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def validate(self, obj: Obj) -> list[FieldError]:
        errors = super().validate(obj) + validate_ingress_spec(obj.get("spec"))
        annotations = _dict(_dict(obj.get("metadata")).get("annotations"))
        class_name = _dict(obj.get("spec")).get("ingressClassName")
        if INGRESS_CLASS_ANNOTATION in annotations and class_name is not None and \
                annotations[INGRESS_CLASS_ANNOTATION] != class_name:
            errors.append(invalid(f"annotations.{INGRESS_CLASS_ANNOTATION}", annotations[INGRESS_CLASS_ANNOTATION],
                                  "must match `ingressClassName` when both are specified"))
        return errors

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_meta_update(new, old) + Strategy.validate(self, new) + \
            validate_ingress_spec(new.get("spec"), old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return validate_meta_update(new, old) + validate_load_balancer_status(new.get("status"), old.get("status"))

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(INGRESS_COLUMNS, lambda obj: ingress_row(obj, now))


# --- IngressClass --------------------------------------------------------------------------------------
SCOPES = ["Cluster", "Namespace"]


def _validate_parameters(parameters: Any) -> list[FieldError]:
    if parameters is None:
        return []
    parameters = _dict(parameters)
    path = "spec.parameters"
    errors: list[FieldError] = []
    if parameters.get("apiGroup") is not None:
        errors += [invalid(f"{path}.apiGroup", parameters["apiGroup"], problem)
                   for problem in dns1123_subdomain(str(parameters["apiGroup"]))]
    for key in ("kind", "name"):
        value = parameters.get(key) or ""
        if not value:
            errors.append(required(f"{path}.{key}", ""))
        else:
            errors += [invalid(f"{path}.{key}", value, problem) for problem in path_segment_problems(value)]
    scope = parameters.get("scope")
    if scope is None:
        return errors + [required(f"{path}.scope", "")]
    if scope not in SCOPES:
        errors.append(not_supported(f"{path}.scope", scope, SCOPES))
    elif scope == "Namespace":
        namespace = parameters.get("namespace")
        if namespace is None:
            errors.append(required(f"{path}.namespace", "`parameters.scope` is set to 'Namespace'"))
        else:
            errors += [invalid(f"{path}.namespace", namespace, problem) for problem in dns1123_label(str(namespace))]
    elif parameters.get("namespace") is not None:
        errors.append(forbidden(f"{path}.namespace", "`parameters.scope` is set to 'Cluster'"))
    return errors


def validate_ingress_class_spec(spec: Any) -> list[FieldError]:
    spec = _dict(spec)
    controller = spec.get("controller") or ""
    errors: list[FieldError] = []
    if not controller:
        errors.append(required("spec.controller", ""))
    else:
        if len(controller) > _MAX_CONTROLLER_LENGTH:
            errors.append(FieldError("FieldValueTooLong", "spec.controller",
                                     f"may not be more than {_MAX_CONTROLLER_LENGTH} bytes"))
        errors += domain_prefixed_path("spec.controller", controller)
    return errors + _validate_parameters(spec.get("parameters"))


INGRESS_CLASS_COLUMNS = [
    Column("Name", "string", "name", NAME_DESCRIPTION),
    Column("Controller", "string", "", "Controller that is responsible for handling this class"),
    Column("Parameters", "string", "", "A reference to a resource with additional parameters"),
    Column("Age", "string", "", AGE_DESCRIPTION),
]


def ingress_class_row(ingress_class: Obj, now: datetime.datetime) -> Row:
    spec = _dict(ingress_class.get("spec"))
    parameters = spec.get("parameters")
    text = "<none>"
    if isinstance(parameters, dict):
        text = parameters.get("kind", "")
        if parameters.get("apiGroup") is not None:
            text += "." + parameters["apiGroup"]
        text += "/" + parameters.get("name", "")
    return Row([ingress_class["metadata"]["name"], spec.get("controller", ""), text,
                age(ingress_class["metadata"].get("creationTimestamp"), now)])


@dataclass
class IngressClassStrategy(_SpecGenerationStrategy):
    info: ResourceInfo = INGRESS_CLASS_INFO

    def default(self, obj: Obj) -> None:
        parameters = _dict(obj.get("spec")).get("parameters")
        if isinstance(parameters, dict) and parameters.get("scope") is None:
            parameters["scope"] = "Cluster"

    def validate(self, obj: Obj) -> list[FieldError]:
        return super().validate(obj) + validate_ingress_class_spec(obj.get("spec"))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errors = validate_meta_update(new, old)
        controller, old_controller = _dict(new.get("spec")).get("controller"), _dict(old.get("spec")).get("controller")
        if controller != old_controller:
            errors.append(invalid("spec.controller", controller or "", "field is immutable"))
        return errors + self.validate(new)

    def table(self, now: datetime.datetime) -> TableSpec:
        return TableSpec(INGRESS_CLASS_COLUMNS, lambda obj: ingress_class_row(obj, now))


def networking_strategies() -> list[Strategy]:
    return [NetworkPolicyStrategy(), IngressStrategy(), IngressClassStrategy()]

