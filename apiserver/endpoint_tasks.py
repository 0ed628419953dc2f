"""The Service-backend controllers the server runs, sharing one set of informers."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.endpoints_controller import EndpointsController
from apiserver.endpointslice_controller import EndpointSliceController
from apiserver.endpointslice_mirroring import EndpointSliceMirroringController
from apiserver.informer import SharedInformers


def endpoint_tasks(api: API) -> list[asyncio.Task]:
    informers = SharedInformers()
    controllers = [EndpointsController(api, informers), EndpointSliceController(api, informers),
                   EndpointSliceMirroringController(api, informers)]
    return [asyncio.create_task(informers.run(), name="endpoint-informers"),
            *(asyncio.create_task(c.run(), name=c.name) for c in controllers)]
