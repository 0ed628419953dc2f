import ipaddress
import os
import threading

import pytest

from netns.ipam import IPAMExhausted, IPAMStore, Owner, decode_owner, encode_owner, pick_address

NET = ipaddress.IPv4Network("10.244.0.0/29")  # hosts .1-.6
GW = ipaddress.IPv4Address("10.244.0.1")


def ip(last: int) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(f"10.244.0.{last}")


def test_pick_skips_gateway_network_and_broadcast():
    assert pick_address(NET, GW, set(), None) == ip(2)
    assert pick_address(NET, GW, {ip(n) for n in range(2, 7)}, None) is None


def test_pick_continues_after_last_reserved_and_wraps():
    assert pick_address(NET, GW, {ip(2)}, ip(2)) == ip(3)
    assert pick_address(NET, GW, {ip(6)}, ip(6)) == ip(2)
    assert pick_address(NET, GW, set(), ip(4)) == ip(5)
    assert pick_address(NET, GW, set(), ipaddress.IPv4Address("192.168.0.9")) == ip(2)


def test_owner_encoding_round_trips():
    owner = Owner("abc", "eth0")
    assert decode_owner(encode_owner(owner)) == owner
    assert decode_owner("") is None


def test_allocate_release_and_reuse_order(tmp_path):
    store = IPAMStore(str(tmp_path), "shipmate")
    a = store.allocate("a", "eth0", NET, GW)
    b = store.allocate("b", "eth0", NET, GW)
    assert (a, b) == (ip(2), ip(3))
    assert store.allocate("a", "eth0", NET, GW) == a  # repeated ADD
    assert store.release("a", "eth0") == [a]
    assert store.release("a", "eth0") == []  # idempotent
    assert store.allocate("c", "eth0", NET, GW) == ip(4)  # round-robin: .2 is not reused at once
    assert store.lookup("b", "eth0") == b and store.lookup("a", "eth0") is None
    assert (tmp_path / "shipmate" / str(b)).read_text() == "b\neth0\n"


def test_state_survives_a_new_store_instance(tmp_path):
    IPAMStore(str(tmp_path), "shipmate").allocate("a", "eth0", NET, GW)
    again = IPAMStore(str(tmp_path), "shipmate")
    assert again.allocate("b", "eth0", NET, GW) == ip(3)
    assert set(again.allocations()) == {ip(2), ip(3)}


def test_exhaustion(tmp_path):
    store = IPAMStore(str(tmp_path), "shipmate")
    for n in range(5):
        store.allocate(f"c{n}", "eth0", NET, GW)
    with pytest.raises(IPAMExhausted):
        store.allocate("one-too-many", "eth0", NET, GW)


def test_concurrent_allocations_are_distinct(tmp_path):
    net = ipaddress.IPv4Network("10.244.0.0/24")
    results: list[ipaddress.IPv4Address] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        # a separate store object per thread: the flock, not shared memory, must serialize them
        address = IPAMStore(str(tmp_path), "shipmate").allocate(f"c{n}", "eth0", net, GW)
        with lock:
            results.append(address)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 40
    assert len([n for n in os.listdir(tmp_path / "shipmate") if n.startswith("10.")]) == 40
