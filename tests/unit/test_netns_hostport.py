"""netns/hostport.py: containerd's portMappings, the per-sandbox records, the nat text."""
from netns.hostport import JUMPS, HostPortStore, PortMapping, Sandbox, parse_port_mappings, render


def test_parse_port_mappings_as_containerd_sends_them():
    runtime_config = {"portMappings": [
        {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
        {"hostPort": 53, "containerPort": 5353, "protocol": "udp", "hostIP": "10.1.2.3"},
        {"hostPort": 9, "containerPort": 9, "protocol": "sctp", "hostIP": "0.0.0.0"},
        {"hostPort": 0, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 70000, "containerPort": 80},
        {"hostPort": 81, "containerPort": 80, "hostIP": "fd00::1"},
        {"hostPort": 82, "containerPort": 80, "protocol": "icmp"},
        {"HostPort": 8443, "ContainerPort": 443, "Protocol": "tcp", "HostIP": ""},     # containerd 1.6
        "junk"]}
    assert parse_port_mappings(runtime_config) == (PortMapping(9, 9, "sctp"), PortMapping(53, 5353, "udp", "10.1.2.3"),
                                                   PortMapping(8081, 80, "tcp"), PortMapping(8443, 443, "tcp"))
    assert parse_port_mappings(None) == () and parse_port_mappings({}) == ()


def test_store_round_trip(tmp_path):
    store = HostPortStore(str(tmp_path), "shipmate")
    assert store.sandboxes() == []
    sandbox = Sandbox("abc", "10.244.0.5", "10.244.0.0/24", "default/web", (PortMapping(8081, 80),))
    store.record(sandbox)
    assert store.sandboxes() == [sandbox]
    assert store.forget("abc") and not store.forget("abc")
    assert store.sandboxes() == []


def test_render():
    sandbox = Sandbox("abc", "10.244.0.5", "10.244.0.0/24", "default/web",
                      (PortMapping(8081, 80), PortMapping(53, 5353, "udp", "10.1.2.3")))
    text = render([sandbox], JUMPS[:1]).splitlines()
    assert text[:3] == ["*nat", ":SHIPMATE-HOSTPORTS - [0:0]", ":SHIPMATE-HOSTPORTS-MASQ - [0:0]"]
    match = '-m comment --comment "default/web hostPort 8081" -p tcp -m tcp --dport 8081'
    assert f"-A SHIPMATE-HOSTPORTS {match} -s 127.0.0.0/8 -j MARK --set-xmark 0x2000/0x2000" in text
    assert f"-A SHIPMATE-HOSTPORTS {match} -s 10.244.0.0/24 -j MARK --set-xmark 0x2000/0x2000" in text
    assert f"-A SHIPMATE-HOSTPORTS {match} -j DNAT --to-destination 10.244.0.5:80" in text
    assert ('-A SHIPMATE-HOSTPORTS -m comment --comment "default/web hostPort 53" -d 10.1.2.3/32 -p udp -m udp '
            "--dport 53 -j DNAT --to-destination 10.244.0.5:5353") in text
    assert "-A SHIPMATE-HOSTPORTS-MASQ -m mark --mark 0x2000/0x2000 -j MASQUERADE" in text
    assert ('-I PREROUTING 1 -m comment --comment "shipmate hostPorts" -m addrtype --dst-type LOCAL '
            "-j SHIPMATE-HOSTPORTS") in text
    assert text[-1] == "COMMIT"
