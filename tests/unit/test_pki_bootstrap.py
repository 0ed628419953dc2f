"""The server's PKI at start: the CA kept once in the (SQLite) datastore, leaf certificates on disk and
when they are reissued."""
from __future__ import annotations

import asyncio
import datetime
import os
import ssl

import pytest

from apiserver import pki_bootstrap
from apiserver.pki_bootstrap import LeafSpec, reissue_reason, server_sans
from apiserver.storage.sqlite import SQLiteStorage
from shipmate import pki

NOW = datetime.datetime.now(datetime.timezone.utc)


@pytest.fixture
async def storage(tmp_path):
    store = SQLiteStorage(str(tmp_path / "state.db"))
    await store.start()
    yield store
    await store.close()


def test_server_sans_cover_service_names_loopback_advertise_first_service_ip_and_extras():
    dns_names, ips = server_sans("Node-1", "192.168.1.10", "10.96.0.0/12", ["api.example.com", "10.0.0.9", "::1"])
    assert dns_names == ("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                         "kubernetes.default.svc.cluster.local", "node-1", "api.example.com")
    assert ips == ("127.0.0.1", "::1", "192.168.1.10", "10.96.0.1", "10.0.0.9")


def test_reissue_reasons():
    ca = pki.make_ca()
    spec = LeafSpec("server", "kube-apiserver", dns_names=("localhost",), ip_addresses=("127.0.0.1", "::1"),
                    server=True)
    good, _ = pki.issue(*ca, spec.common_name, dns_names=spec.dns_names, ip_addresses=("::1", "127.0.0.1"),
                        server=True)
    assert reissue_reason(good, ca[0], spec, NOW) == ""
    assert reissue_reason(None, ca[0], spec, NOW) == "missing"
    assert "not signed" in reissue_reason(good, pki.make_ca()[0], spec, NOW)
    assert reissue_reason(good, ca[0], spec, NOW + datetime.timedelta(days=300)).startswith("expires at")
    wider = LeafSpec("server", "kube-apiserver", dns_names=("localhost", "api.example.com"),
                     ip_addresses=spec.ip_addresses, server=True)
    assert reissue_reason(good, ca[0], wider, NOW) == "subject alternative names changed"
    admin = LeafSpec("admin", "kubernetes-admin", ("system:masters",), client=True)
    assert reissue_reason(good, ca[0], admin, NOW) == "subject changed"


async def test_ca_is_created_once_and_shared_by_racing_servers(storage):
    first, second = await asyncio.gather(pki_bootstrap.load_or_create_ca(storage),
                                         pki_bootstrap.load_or_create_ca(storage))
    assert first == second
    assert await pki_bootstrap.load_or_create_ca(storage) == first
    assert pki.verify_issued_by(first[0], first[0])


async def test_ca_key_is_invisible_to_registry_lists_and_watches(storage):
    watch = storage.watch("/registry/", storage.revision)
    await pki_bootstrap.load_or_create_ca(storage)
    await storage.create("/registry/configmaps/default/after", b"{}")
    listed, _ = await storage.list("/registry/")
    assert [kv.key for kv in listed] == ["/registry/configmaps/default/after"]
    event = await watch.next(timeout=2)
    assert event is not None and event.kv.key == "/registry/configmaps/default/after"
    watch.stop()
    assert (await storage.get(pki_bootstrap.CA_STORAGE_KEY)) is not None


async def test_bootstrap_writes_files_and_reissues_only_what_changed(storage, tmp_path):
    data_dir = str(tmp_path / "data")
    server_pki = await pki_bootstrap.bootstrap(storage, data_dir, "127.0.0.1", "10.96.0.0/12")
    modes = {name: oct(os.stat(os.path.join(data_dir, "pki", name)).st_mode & 0o777)
             for name in os.listdir(os.path.join(data_dir, "pki"))}
    assert modes == {"ca.crt": "0o644", "ca.key": "0o600", "server.crt": "0o644", "server.key": "0o600",
                     "apiserver-kubelet-client.crt": "0o644", "apiserver-kubelet-client.key": "0o600",
                     "admin.crt": "0o644", "admin.key": "0o600"}
    with open(server_pki.ca_cert_path, "rb") as handle:
        assert handle.read() == server_pki.ca_cert_pem
    with open(server_pki.kubelet_client_cert, "rb") as handle:
        assert pki.cert_subject(handle.read()) == ("kube-apiserver-kubelet-client", ("system:masters",))
    admin_cert, _ = server_pki.admin_credentials()
    assert pki.cert_subject(admin_cert) == ("kubernetes-admin", ("system:masters",))
    assert isinstance(server_pki.server_ssl_context(), ssl.SSLContext)
    assert server_pki.server_ssl_context().verify_mode == ssl.CERT_OPTIONAL
    assert server_pki.server_ssl_context().minimum_version == ssl.TLSVersion.TLSv1_2
    assert isinstance(server_pki.kubelet_client_ssl_context("n1"), ssl.SSLContext)

    def contents() -> dict[str, bytes]:
        return {name: open(os.path.join(server_pki.directory, name), "rb").read()
                for name in ("server.crt", "admin.crt", "apiserver-kubelet-client.crt")}

    before = contents()
    await pki_bootstrap.bootstrap(storage, data_dir, "127.0.0.1", "10.96.0.0/12")
    assert contents() == before
    await pki_bootstrap.bootstrap(storage, data_dir, "127.0.0.1", "10.96.0.0/12", ["api.example.com"])
    after = contents()
    assert after["server.crt"] != before["server.crt"] and "api.example.com" in pki.cert_sans(after["server.crt"])[0]
    assert after["admin.crt"] == before["admin.crt"]
    os.unlink(os.path.join(server_pki.directory, "admin.crt"))
    await pki_bootstrap.bootstrap(storage, data_dir, "127.0.0.1", "10.96.0.0/12", ["api.example.com"])
    assert contents()["admin.crt"] != before["admin.crt"]


async def test_unreadable_ca_in_the_datastore_is_a_clear_error(storage):
    await storage.create(pki_bootstrap.CA_STORAGE_KEY, b"not json")
    with pytest.raises(pki_bootstrap.PKIError, match="/shipmate/pki/ca is unreadable"):
        await pki_bootstrap.load_or_create_ca(storage)


def test_tls_san_flag_is_repeatable_and_takes_comma_lists(capsys):
    from apiserver.config import parse_args
    config = parse_args(["--bind-address", "127.0.0.1", "--tls-san", "api.example.com,10.0.0.9",
                         "--tls-san", " lb.example.com ", "--tls-san", "api.example.com"])
    assert config.tls_sans == ("api.example.com", "10.0.0.9", "lb.example.com")
    assert parse_args(["--bind-address", "127.0.0.1"]).tls_sans == ()
    with pytest.raises(SystemExit):
        parse_args(["--bind-address", "127.0.0.1", "--tls-san", "bad name!"])
    assert "--tls-san: 'bad name!' is neither an IP address nor a DNS name" in capsys.readouterr().err
