"""API server side of pods/log and pods/exec: container choice, query translation, node address, errors."""
from __future__ import annotations

import pytest
from multidict import MultiDict

from apiserver.errors import APIError
from apiserver.http.pod_proxy import log_query, node_address, node_error, resolve_container, stream_query


def pod(*names: str, init: tuple[str, ...] = ()) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": n} for n in names],
                                                "initContainers": [{"name": n} for n in init]}}


def test_resolve_container_like_upstream() -> None:
    assert resolve_container(pod("a"), "") == "a"
    assert resolve_container(pod("a", "b", init=("i",)), "i") == "i"
    with pytest.raises(APIError) as error:
        resolve_container(pod("a", "b", init=("i",)), "")
    assert (error.value.code, error.value.message) == (
        400, "a container name must be specified for pod p, choose one of: [i a b]")
    with pytest.raises(APIError) as error:
        resolve_container(pod("a"), "zz")
    assert error.value.message == "container zz is not valid for pod p"


def test_log_query_passes_through_checked_options() -> None:
    query = {"follow": "true", "previous": "false", "timestamps": "true", "tailLines": "5", "limitBytes": "9",
             "sinceSeconds": "30", "container": "c", "insecureSkipTLSVerifyBackend": "true"}
    assert log_query(query, "p") == {"follow": "true", "timestamps": "true", "tailLines": "5", "limitBytes": "9",
                                     "sinceSeconds": "30"}
    with pytest.raises(APIError) as error:
        log_query({"tailLines": "-2"}, "p")
    assert error.value.code == 422 and "tailLines" in error.value.message
    with pytest.raises(APIError) as error:
        log_query({"sinceSeconds": "3", "sinceTime": "2026-01-01T00:00:00Z"}, "p")
    assert error.value.code == 422
    with pytest.raises(APIError) as error:
        log_query({"limitBytes": "many"}, "p")
    assert error.value.code == 400


def test_stream_query_uses_kubelet_names() -> None:
    query = MultiDict([("command", "sh"), ("command", "-c"), ("command", "exit 3"), ("stdin", "true"),
                       ("stdout", "true"), ("stderr", "false"), ("tty", "true"), ("container", "c")])
    assert stream_query(query, "exec") == [("command", "sh"), ("command", "-c"), ("command", "exit 3"),
                                           ("input", "1"), ("output", "1"), ("tty", "1")]
    assert stream_query(query, "attach") == [("input", "1"), ("output", "1"), ("tty", "1")]


def test_node_address() -> None:
    node = {"metadata": {"name": "n1"},
            "status": {"addresses": [{"type": "Hostname", "address": "n1"},
                                     {"type": "InternalIP", "address": "10.0.0.2"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": 20250}}}}
    assert node_address(node) == ("10.0.0.2", 20250)
    assert node_address({"metadata": {"name": "n2"}, "status": {}}) == ("n2", 10250)


def test_node_error_keeps_the_node_message() -> None:
    error = node_error(400, 'container "c" in pod "p" is waiting to start: ContainerCreating\n')
    assert error.status() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": 'container "c" in pod "p" is waiting to start: ContainerCreating',
                              "reason": "BadRequest", "code": 400}
    assert node_error(502, "").code == 500


def test_forward_ports_accept_repeated_and_comma_separated_values() -> None:
    from multidict import MultiDict
    from apiserver import errors
    from apiserver.http.pod_proxy import forward_ports
    assert forward_ports(MultiDict([("ports", "80,443"), ("ports", "8080")])) == [80, 443, 8080]
    assert forward_ports(MultiDict()) == []
    for bad in ("x", "0", "65536"):
        with pytest.raises(errors.APIError) as raised:
            forward_ports(MultiDict(ports=bad))
        assert raised.value.code in (400, 422)


def test_spdy_tunnel_subprotocols_name_the_spdy_protocols() -> None:
    from apiserver.http.pod_proxy import offered_protocols, tunnelled_protocols
    from multidict import CIMultiDict
    headers = CIMultiDict([("Sec-WebSocket-Protocol", "SPDY/3.1+portforward.k8s.io, v4.channel.k8s.io"),
                           ("Sec-WebSocket-Protocol", "SPDY/3.1+other.example.com")])
    offered = offered_protocols(headers, "Sec-WebSocket-Protocol")
    assert offered == ["SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io", "SPDY/3.1+other.example.com"]
    assert tunnelled_protocols(offered) == ["portforward.k8s.io"]
