"""The in-memory allocator's view of other servers' values: taken values, relearning from the store."""
from apiserver.allocation.service_allocation import SERVICE_IPS, SERVICE_NODE_PORTS, ServiceAllocator


def service(name, ip, port=None, namespace="default", uid="u"):
    ports = [{"port": 80, **({"nodePort": port} if port else {})}]
    return {"metadata": {"name": name, "namespace": namespace, "uid": uid},
            "spec": {"clusterIP": ip, "clusterIPs": [ip], "ports": ports}}


def test_a_value_taken_elsewhere_moves_to_its_holder():
    allocator = ServiceAllocator("10.96.0.0/28", (30000, 30003))
    allocator.sync("default/mine", service("mine", "10.96.0.5", 30001))
    allocator.note_taken(SERVICE_NODE_PORTS, "30001", "default/theirs", picked_by="default/mine")
    allocator.note_taken(SERVICE_IPS, "10.96.0.5", "default/theirs", picked_by="default/mine")
    assert allocator.node_ports.range.owner(30001) == "default/theirs"
    assert allocator.ips.range.owner(5) == "default/theirs"
    allocator.note_taken(SERVICE_IPS, "192.0.2.1", "default/x")  # outside the range: ignored
    assert allocator.ips.range.owners() == {"default/theirs"}


def test_relearn_sets_every_owner_to_the_store_but_keeps_local_writes_in_flight():
    allocator = ServiceAllocator("10.96.0.0/28", (30000, 30003))
    allocator.sync("default/gone", service("gone", "10.96.0.2", 30000))      # deleted on another server
    allocator.sync("default/moved", service("moved", "10.96.0.3", 30001))    # changed on another server
    allocator.sync("default/local", service("local", "10.96.0.4", 30002))    # being written here now
    stored = [service("moved", "10.96.0.3", 30003), service("new", "10.96.0.6")]
    claims = [(SERVICE_NODE_PORTS, "30000", "default/inflight")]             # claimed elsewhere, not stored yet
    allocator.relearn(stored, claims, keep=lambda owner: owner == "default/local")
    ports = allocator.node_ports.range
    assert ports.owner(30000) == "default/inflight" and ports.owner(30001) is None
    assert ports.owner(30002) == "default/local" and ports.owner(30003) == "default/moved"
    assert allocator.ips.range.owner(2) is None and allocator.ips.range.owner(6) == "default/new"
    assert claims == [(SERVICE_NODE_PORTS, "30000", "default/inflight")]  # the caller's list is left alone
    assert not ports.full() and ports.allocate("default/last") == 30001
    assert ports.full() and allocator.exhausted()
    allocator.relearn([], [], keep=lambda owner: False)
    assert not ports.full() and not allocator.exhausted() and not ports.owners()
