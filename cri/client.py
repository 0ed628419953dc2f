"""A thin asyncio client of the CRI v1 RuntimeService and ImageService.

It only speaks the protocol: protobuf messages in and out, a deadline on every
call, and gRPC failures mapped to cri.errors. Deciding what to do about a
result (retries, back-off, pod policy) is the caller's job.
"""
from __future__ import annotations

from typing import Any

import grpc

from cri.channel import DEFAULT_ENDPOINT, ChannelClient
from cri.errors import error_from_rpc
from cri.gen import api_pb2, api_pb2_grpc

# What kubelet sends in VersionRequest.version; runtimes echo their own.
KUBELET_RUNTIME_API_VERSION = "0.1.0"


def runtime_conditions(response: api_pb2.StatusResponse) -> dict[str, api_pb2.RuntimeCondition]:
    """The conditions of a Status response by type ("RuntimeReady", "NetworkReady", ...)."""
    return {condition.type: condition for condition in response.status.conditions}


class CRIClient(ChannelClient):
    """CRI client over a grpc.aio channel; construct it inside the running event loop.

    timeout bounds every call. Calls that may pull an image (pull_image, and
    run_pod_sandbox, which pulls the sandbox image when it is missing) are
    bounded by pull_timeout instead; stop_container and exec_sync add their own
    timeout argument to it, as kubelet does.
    """

    def __init__(self, endpoint: str = DEFAULT_ENDPOINT, timeout: float = 10.0,
                 pull_timeout: float = 300.0) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.pull_timeout = pull_timeout
        super().__init__(endpoint)
        self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self._images = api_pb2_grpc.ImageServiceStub(self._channel)

    async def _call(self, stub: Any, method: str, request: Any, timeout: float | None = None) -> Any:
        try:
            return await getattr(stub, method)(request, timeout=self.timeout if timeout is None else timeout)
        except grpc.aio.AioRpcError as error:
            raise error_from_rpc(error, endpoint=self.endpoint, method=method) from None

    # ------------------------------------------------------------ runtime

    async def version(self) -> api_pb2.VersionResponse:
        return await self._call(self._runtime, "Version",
                                api_pb2.VersionRequest(version=KUBELET_RUNTIME_API_VERSION))

    async def status(self, verbose: bool = False) -> api_pb2.StatusResponse:
        """Runtime conditions in .status.conditions; see runtime_conditions()."""
        return await self._call(self._runtime, "Status", api_pb2.StatusRequest(verbose=verbose))

    async def update_runtime_config(self, pod_cidr: str) -> None:
        request = api_pb2.UpdateRuntimeConfigRequest(
            runtime_config=api_pb2.RuntimeConfig(network_config=api_pb2.NetworkConfig(pod_cidr=pod_cidr)))
        await self._call(self._runtime, "UpdateRuntimeConfig", request)

    # ------------------------------------------------------------ sandboxes

    async def run_pod_sandbox(self, config: api_pb2.PodSandboxConfig, runtime_handler: str = "") -> str:
        request = api_pb2.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler)
        response = await self._call(self._runtime, "RunPodSandbox", request, self.pull_timeout)
        return response.pod_sandbox_id

    async def stop_pod_sandbox(self, id: str) -> None:
        await self._call(self._runtime, "StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=id))

    async def remove_pod_sandbox(self, id: str) -> None:
        await self._call(self._runtime, "RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=id))

    async def pod_sandbox_status(self, id: str, verbose: bool = False) -> api_pb2.PodSandboxStatusResponse:
        return await self._call(self._runtime, "PodSandboxStatus",
                                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=id, verbose=verbose))

    async def list_pod_sandbox(self, filter: api_pb2.PodSandboxFilter | None = None) -> list[api_pb2.PodSandbox]:
        response = await self._call(self._runtime, "ListPodSandbox", api_pb2.ListPodSandboxRequest(filter=filter))
        return list(response.items)

    async def port_forward(self, pod_sandbox_id: str, ports: list[int]) -> str:
        """URL of the runtime's streaming server for this port-forward session."""
        response = await self._call(self._runtime, "PortForward",
                                    api_pb2.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=ports))
        return response.url

    # ------------------------------------------------------------ containers

    async def create_container(self, pod_sandbox_id: str, config: api_pb2.ContainerConfig,
                               sandbox_config: api_pb2.PodSandboxConfig) -> str:
        request = api_pb2.CreateContainerRequest(pod_sandbox_id=pod_sandbox_id, config=config,
                                                 sandbox_config=sandbox_config)
        response = await self._call(self._runtime, "CreateContainer", request)
        return response.container_id

    async def start_container(self, id: str) -> None:
        await self._call(self._runtime, "StartContainer", api_pb2.StartContainerRequest(container_id=id))

    async def stop_container(self, id: str, timeout: int) -> None:
        """Signal the container, kill it after timeout seconds (0: at once)."""
        await self._call(self._runtime, "StopContainer", api_pb2.StopContainerRequest(container_id=id, timeout=timeout),
                         self.timeout + max(timeout, 0))

    async def remove_container(self, id: str) -> None:
        await self._call(self._runtime, "RemoveContainer", api_pb2.RemoveContainerRequest(container_id=id))

    async def list_containers(self, filter: api_pb2.ContainerFilter | None = None) -> list[api_pb2.Container]:
        response = await self._call(self._runtime, "ListContainers", api_pb2.ListContainersRequest(filter=filter))
        return list(response.containers)

    async def container_status(self, id: str, verbose: bool = False) -> api_pb2.ContainerStatusResponse:
        return await self._call(self._runtime, "ContainerStatus",
                                api_pb2.ContainerStatusRequest(container_id=id, verbose=verbose))

    async def update_container_resources(self, id: str, linux: api_pb2.LinuxContainerResources) -> None:
        await self._call(self._runtime, "UpdateContainerResources",
                         api_pb2.UpdateContainerResourcesRequest(container_id=id, linux=linux))

    async def reopen_container_log(self, id: str) -> None:
        await self._call(self._runtime, "ReopenContainerLog", api_pb2.ReopenContainerLogRequest(container_id=id))

    async def exec_sync(self, id: str, cmd: list[str], timeout: int) -> api_pb2.ExecSyncResponse:
        """Run cmd in the container; the runtime kills it after timeout seconds (0: no limit but ours)."""
        return await self._call(self._runtime, "ExecSync",
                                api_pb2.ExecSyncRequest(container_id=id, cmd=cmd, timeout=timeout),
                                self.timeout + max(timeout, 0))

    async def exec(self, request: api_pb2.ExecRequest) -> str:
        """URL of the runtime's streaming server for this exec session."""
        return (await self._call(self._runtime, "Exec", request)).url

    async def attach(self, request: api_pb2.AttachRequest) -> str:
        """URL of the runtime's streaming server for this attach session."""
        return (await self._call(self._runtime, "Attach", request)).url

    async def container_stats(self, id: str) -> api_pb2.ContainerStats:
        response = await self._call(self._runtime, "ContainerStats", api_pb2.ContainerStatsRequest(container_id=id))
        return response.stats

    async def list_container_stats(self, filter: api_pb2.ContainerStatsFilter | None = None
                                   ) -> list[api_pb2.ContainerStats]:
        response = await self._call(self._runtime, "ListContainerStats",
                                    api_pb2.ListContainerStatsRequest(filter=filter))
        return list(response.stats)

    # ------------------------------------------------------------ images

    async def pull_image(self, image: str, sandbox_config: api_pb2.PodSandboxConfig | None = None,
                         auth: api_pb2.AuthConfig | None = None) -> str:
        """Pull image and return its image_ref (the ID kubelet reports as imageID)."""
        request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image), auth=auth,
                                           sandbox_config=sandbox_config)
        response = await self._call(self._images, "PullImage", request, self.pull_timeout)
        return response.image_ref

    async def image_status(self, image: str) -> api_pb2.Image | None:
        """The image, or None when the runtime does not have it."""
        response = await self._call(self._images, "ImageStatus",
                                    api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image)))
        return response.image if response.HasField("image") else None

    async def list_images(self, filter: api_pb2.ImageFilter | None = None) -> list[api_pb2.Image]:
        response = await self._call(self._images, "ListImages", api_pb2.ListImagesRequest(filter=filter))
        return list(response.images)

    async def remove_image(self, image: str) -> None:
        await self._call(self._images, "RemoveImage", api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=image)))

    async def image_fs_info(self) -> api_pb2.ImageFsInfoResponse:
        return await self._call(self._images, "ImageFsInfo", api_pb2.ImageFsInfoRequest())
