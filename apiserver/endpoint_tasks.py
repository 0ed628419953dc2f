"""The Service-backend controllers the server runs, on the server's shared informers."""
from __future__ import annotations

import asyncio

from apiserver.api import API
from apiserver.controllers.endpoints import EndpointsController
from apiserver.controllers.endpointslice import EndpointSliceController
from apiserver.controllers.endpointslice_mirroring import EndpointSliceMirroringController
from apiserver.informer import SharedInformers


def endpoint_tasks(api: API, informers: SharedInformers | None = None) -> list[asyncio.Task]:
    """The server passes its shared informers and runs them itself; without them (the controllers alone, as
    in tests) the returned tasks include a set of their own."""
    shared = informers if informers is not None else SharedInformers()
    controllers = [EndpointsController(api, shared), EndpointSliceController(api, shared),
                   EndpointSliceMirroringController(api, shared)]
    tasks = [asyncio.create_task(c.run(), name=c.name) for c in controllers]
    if informers is None:
        tasks.append(asyncio.create_task(shared.run(), name="endpoint-informers"))
    return tasks
