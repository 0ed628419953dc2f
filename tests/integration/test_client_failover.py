"""Client failover for real: two `shipmate server` processes on one etcd (so one CA, one store) and a
KubeClient given both URLs, as an agent started with `--server A,B`. Server A is SIGKILLed: the next
request goes to B and the client stays there; an Informer whose watch was on A resumes on B and sees
what is written after the kill."""
from __future__ import annotations

import asyncio
import signal

import pytest

from shipmate.informer import Informer
from shipmate.kubeclient import CONFIG_MAPS, NAMESPACES, KubeClient, ResourceSource, load_kubeconfig
from tests.integration.etcd_support import EtcdCluster, etcd_available
from tests.integration.test_apiserver_kubectl import Server

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not etcd_available(), reason="etcd-server/etcd-client not installed "
                                                              "(hack/up.sh --test-extras installs them)")]

NAMESPACE = "failover"


@pytest.fixture
def servers(tmp_path):
    etcd = EtcdCluster(tmp_path / "etcd", size=1).start()
    pair = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        server = Server(tmp_path / name)
        server.extra_args = ["--datastore-endpoint", etcd.endpoint]
        pair.append(server)
    try:
        for server in pair:
            server.start()
        yield pair
    finally:
        for server in pair:
            server.stop()
        etcd.stop()


def configmap(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": NAMESPACE},
            "data": {"k": name}}


async def wait_for_key(informer: Informer, key: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while key not in informer.cache:
        assert asyncio.get_running_loop().time() < deadline, f"{key} never reached the informer"
        await asyncio.sleep(0.1)


async def test_client_and_informer_fail_over_when_a_server_is_killed(servers) -> None:
    a, b = servers
    config = load_kubeconfig(a.kubeconfig)          # admin credentials; B trusts the same CA
    config.server, config.extra_servers = a.url, (b.url,)
    async with KubeClient(config, timeout=10) as client:
        await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        informer = Informer(ResourceSource(client, CONFIG_MAPS, NAMESPACE), min_backoff=0.1, max_backoff=1.0)
        task = asyncio.create_task(informer.run())
        try:
            await client.create(CONFIG_MAPS, configmap("before"))
            await wait_for_key(informer, f"{NAMESPACE}/before")
            assert client.server == a.url

            a.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(a.process.wait, 10)
            created = await client.create(CONFIG_MAPS, configmap("after"))
            assert created["metadata"]["name"] == "after"
            assert client.server == b.url
            await wait_for_key(informer, f"{NAMESPACE}/after")
            assert (await client.get(CONFIG_MAPS, "before", NAMESPACE))["data"] == {"k": "before"}
            assert client.server == b.url
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
