"""Container lifecycle hooks (postStart, preStop): exec through CRI ExecSync, httpGet, sleep."""
from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from cri.client import CRIClient
from cri.errors import CRIError

HTTP_HOOK_TIMEOUT = 10.0       # kubelet's HTTP handler client timeout


class HookError(Exception):
    """The hook ran and failed, or could not run."""


async def run_hook(runtime: CRIClient, container_id: str, handler: dict[str, Any], pod_ip: str,
                   timeout: int = 0) -> None:
    """Runs one lifecycle handler; `timeout` bounds an exec hook in the runtime (0: no bound but
    the client's deadline)."""
    if handler.get("exec"):
        command = list(handler["exec"].get("command") or [])
        try:
            response = await runtime.exec_sync(container_id, command, timeout)
        except CRIError as error:
            raise HookError(f"command {' '.join(command)!r} failed: {error.message}") from None
        if response.exit_code != 0:
            output = (response.stdout + response.stderr).decode("utf-8", "replace")
            raise HookError(f"command {' '.join(command)!r} exited with {response.exit_code}: {output}")
    elif handler.get("httpGet"):
        await _http_get(handler["httpGet"], pod_ip)
    elif handler.get("sleep"):
        await asyncio.sleep(int(handler["sleep"].get("seconds", 0)))
    else:
        raise HookError(f"unsupported lifecycle handler {sorted(handler)}")


async def _http_get(action: dict[str, Any], pod_ip: str) -> None:
    host = action.get("host") or pod_ip
    port = action.get("port")
    if not isinstance(port, int) and not str(port).isdigit():
        raise HookError(f"httpGet hook: named port {port!r} is not supported by this agent")
    scheme = (action.get("scheme") or "HTTP").lower()
    path = action.get("path") or "/"
    url = f"{scheme}://{host}:{int(port)}{path if path.startswith('/') else '/' + path}"
    headers = {h["name"]: h.get("value", "") for h in action.get("httpHeaders") or []}
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=HTTP_HOOK_TIMEOUT)) as session:
            async with session.get(url, headers=headers, ssl=False) as response:
                if response.status >= 400:
                    raise HookError(f"HTTP lifecycle hook ({path}) failed with status {response.status}")
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise HookError(f"HTTP lifecycle hook ({path}) failed: {error!r}") from None
