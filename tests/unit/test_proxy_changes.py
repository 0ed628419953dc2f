"""Change trackers: merge updates per object, forget round trips, report what changed."""
from agent.proxy.changes import EndpointsChangeTracker, ServiceChangeTracker
from agent.proxy.model import ServicePortName

NAME = ServicePortName("ns1", "svc1", "p80", "TCP")


def svc(ip="10.96.0.10", port=80):
    return {"metadata": {"namespace": "ns1", "name": "svc1"},
            "spec": {"clusterIP": ip, "ports": [{"name": "p80", "port": port}]}}


def eps_slice(*ips, name="svc1-a", ready=True):
    return {"metadata": {"namespace": "ns1", "name": name, "labels": {"kubernetes.io/service-name": "svc1"}},
            "addressType": "IPv4", "ports": [{"name": "p80", "port": 8080, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ready}} for ip in ips]}


def test_service_add_update_merge_into_one_change():
    tracker, services = ServiceChangeTracker(), {}
    assert tracker.update(None, svc())
    assert tracker.update(svc(), svc(port=81))
    assert tracker.apply(services) == {NAME}
    assert services[NAME].port == 81
    assert not tracker.pending()


def test_service_round_trip_is_no_change():
    tracker, services = ServiceChangeTracker(), {}
    tracker.update(None, svc())
    tracker.apply(services)
    assert tracker.update(svc(), svc(port=81))
    assert not tracker.update(svc(port=81), svc())  # back where the last sync left it
    assert tracker.apply(services) == set()
    assert services[NAME].port == 80


def test_service_delete_removes_ports():
    tracker, services = ServiceChangeTracker(), {}
    tracker.update(None, svc())
    tracker.apply(services)
    tracker.update(svc(), None)
    assert tracker.apply(services) == {NAME}
    assert services == {}


def test_invalid_service_is_dropped_not_raised():
    tracker, services = ServiceChangeTracker(), {}
    bad = svc()
    bad["spec"]["ports"][0]["protocol"] = "ICMP"
    assert not tracker.update(None, bad)
    assert services == {}


def test_slices_merge_per_service_and_deduplicate():
    tracker, endpoints = EndpointsChangeTracker(), {}
    tracker.update(eps_slice("10.0.0.2", "10.0.0.1", name="svc1-a"))
    tracker.update(eps_slice("10.0.0.1", "10.0.0.10", name="svc1-b"))
    assert tracker.apply(endpoints) == {NAME}
    assert [ep.address for ep in endpoints[NAME]] == ["10.0.0.1:8080", "10.0.0.2:8080", "10.0.0.10:8080"]


def test_slice_delete_and_unchanged_update():
    tracker, endpoints = EndpointsChangeTracker(), {}
    tracker.update(eps_slice("10.0.0.1"))
    tracker.apply(endpoints)
    assert not tracker.update(eps_slice("10.0.0.1"))  # resync of the same content
    assert tracker.update(eps_slice("10.0.0.1"), deleted=True)
    assert tracker.apply(endpoints) == {NAME}
    assert NAME not in endpoints


def test_readiness_change_is_a_change():
    tracker, endpoints = EndpointsChangeTracker(), {}
    tracker.update(eps_slice("10.0.0.1", ready=False))
    tracker.apply(endpoints)
    assert tracker.update(eps_slice("10.0.0.1", ready=True))
    assert tracker.apply(endpoints) == {NAME}
    assert endpoints[NAME][0].ready
