"""The apps/v1 flows of the official Python client's own end-to-end tests (kubernetes-client/python
`kubernetes/e2e_test/test_apps.py` and `kubernetes/aio/e2e_test/test_api.py`: create, read and delete a
DaemonSet and a Deployment, sync and asyncio, from a dict, a YAML string and a YAML file), written again here
with the same checks, driven through the `kubernetes` package. tests/e2e/test_apps_client.py runs them against
the `make up` cluster, tests/integration/test_apps_client.py against a `shipmate server` of the test's own.

Images are the local registry's (the flows only check that the spec round-trips)."""
from __future__ import annotations

import asyncio
import os
import tempfile
import uuid

import yaml

DEPLOYMENT_IMAGE = "127.0.0.1:5000/library/busybox:1.15.4"
DAEMONSET_IMAGE = "127.0.0.1:5000/library/busybox:1.10"
DEPLOYMENT_YAML = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: 3
  selector:
    matchLabels:
      app: nginx
  template:
    metadata:
      labels:
        app: nginx
    spec:
      containers:
      - name: nginx
        image: {image}
        ports:
        - containerPort: 80
"""


def daemonset_body(name: str, image: str = DAEMONSET_IMAGE) -> dict:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"labels": {"app": "nginx"}, "name": name},
            "spec": {"selector": {"matchLabels": {"app": "nginx"}},
                     "template": {"metadata": {"labels": {"app": "nginx"}, "name": name},
                                  "spec": {"containers": [{"name": "nginx-app", "image": image}]}},
                     "updateStrategy": {"type": "RollingUpdate"}}}


def sync_configuration(kubeconfig: str):
    from kubernetes import client, config
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


# --- kubernetes (sync) ------------------------------------------------------------------------------
def create_deployment(configuration, namespace: str = "default") -> None:
    from kubernetes.client import api_client
    from kubernetes.client.api import apps_v1_api
    from kubernetes.client.models import v1_delete_options
    api = apps_v1_api.AppsV1Api(api_client.ApiClient(configuration=configuration))
    name = "nginx-deployment-" + str(uuid.uuid4())
    api.create_namespaced_deployment(body=yaml.safe_load(DEPLOYMENT_YAML.format(name=name, image=DEPLOYMENT_IMAGE)),
                                     namespace=namespace)
    resp = api.read_namespaced_deployment(name, namespace)
    assert resp is not None
    assert resp.metadata.name == name
    assert resp.spec.replicas == 3
    assert resp.spec.selector.match_labels["app"] == "nginx"
    assert resp.spec.template.metadata.labels["app"] == "nginx"
    assert resp.spec.template.spec.containers[0].name == "nginx"
    assert resp.spec.template.spec.containers[0].image == DEPLOYMENT_IMAGE
    assert resp.spec.template.spec.containers[0].ports[0].container_port == 80
    api.delete_namespaced_deployment(name, namespace, body=v1_delete_options.V1DeleteOptions())


def create_daemonset(configuration, namespace: str = "default") -> None:
    from kubernetes.client import api_client
    from kubernetes.client.api import apps_v1_api
    from kubernetes.client.models import v1_delete_options
    api = apps_v1_api.AppsV1Api(api_client.ApiClient(configuration=configuration))
    name = "nginx-app-" + str(uuid.uuid4())
    api.create_namespaced_daemon_set(namespace, body=daemonset_body(name))
    resp = api.read_namespaced_daemon_set(name, namespace)
    assert resp is not None
    assert resp.metadata.name == name
    assert resp.spec.selector.match_labels["app"] == "nginx"
    assert resp.spec.template.metadata.labels["app"] == "nginx"
    assert resp.spec.template.spec.containers[0].name == "nginx-app"
    assert resp.spec.template.spec.containers[0].image == DAEMONSET_IMAGE
    api.delete_namespaced_daemon_set(name, namespace, body=v1_delete_options.V1DeleteOptions())


# --- kubernetes.aio -----------------------------------------------------------------------------------
async def _aio_configuration(kubeconfig: str):
    from kubernetes.aio.client.configuration import Configuration
    from kubernetes.aio.config import kube_config
    configuration = Configuration()
    await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return configuration


async def _aio_create_daemonset(kubeconfig: str, namespace: str) -> None:
    from kubernetes.aio.client import api_client
    from kubernetes.aio.client.api import apps_v1_api
    from kubernetes.aio.client.models import v1_delete_options
    async with api_client.ApiClient(configuration=await _aio_configuration(kubeconfig)) as client:
        api = apps_v1_api.AppsV1Api(client)
        name = "nginx-app-" + str(uuid.uuid4())
        await api.create_namespaced_daemon_set(namespace, body=daemonset_body(name))
        resp = await api.read_namespaced_daemon_set(name, namespace)
        assert resp is not None
        await api.delete_namespaced_daemon_set(name, namespace, body=v1_delete_options.V1DeleteOptions())


async def _aio_create_deployment(kubeconfig: str, namespace: str, from_file: bool) -> None:
    from kubernetes.aio import utils
    from kubernetes.aio.client import api_client
    from kubernetes.aio.client.api import apps_v1_api
    from kubernetes.aio.client.models import v1_delete_options
    async with api_client.ApiClient(configuration=await _aio_configuration(kubeconfig)) as client:
        api = apps_v1_api.AppsV1Api(client)
        name = "nginx-deployment-" + str(uuid.uuid4())
        manifest = DEPLOYMENT_YAML.format(name=name, image=DEPLOYMENT_IMAGE)
        if from_file:
            with tempfile.TemporaryDirectory() as directory:
                path = os.path.join(directory, "temp.yaml")
                with open(path, "w") as handle:
                    handle.write(manifest)
                await utils.create_from_yaml(client, path, namespace=namespace)
        else:
            await api.create_namespaced_deployment(body=yaml.safe_load(manifest), namespace=namespace)
        resp = await api.read_namespaced_deployment(name, namespace)
        assert resp is not None
        await api.delete_namespaced_deployment(name, namespace, body=v1_delete_options.V1DeleteOptions())


def aio_create_daemonset(kubeconfig: str, namespace: str = "default") -> None:
    asyncio.run(_aio_create_daemonset(kubeconfig, namespace))


def aio_create_deployment(kubeconfig: str, namespace: str = "default") -> None:
    asyncio.run(_aio_create_deployment(kubeconfig, namespace, from_file=False))


def aio_create_deployment_from_yaml_file(kubeconfig: str, namespace: str = "default") -> None:
    asyncio.run(_aio_create_deployment(kubeconfig, namespace, from_file=True))
