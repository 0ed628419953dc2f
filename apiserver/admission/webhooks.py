"""MutatingAdmissionWebhook and ValidatingAdmissionWebhook: the admission plugins that call the webhooks of
admissionregistration.k8s.io/v1 configurations (rules in apiserver/admission/webhook_rules.py).

- Mutating webhooks run in order (configurations by name, webhooks as listed) in the mutating part of the
  chain; a JSONPatch answer changes the object, which is defaulted again (custom resources: pruned and
  defaulted). Webhooks with reinvocationPolicy IfNeeded run once more when a later webhook changed the object.
  On DELETE they are called with the old object and may not patch.
- Validating webhooks run in parallel right before storing; the first refusal wins.
- Calls: HTTPS only, verified with the webhook's caBundle (the system roots without one); Service targets go to
  a ready endpoint of the Service, verified as `<service>.<namespace>.svc`. Each call is bounded: its
  timeoutSeconds (at most 30), the response size (MAX_RESPONSE_BYTES), and the number of calls in flight on the
  server (MAX_IN_FLIGHT; a call that cannot start within its timeout fails). Redirects are not followed.
- failurePolicy Ignore lets a request through when the call fails (the failure is logged); Fail refuses it
  with 500 `failed calling webhook "<name>": …`. A refusal is `admission webhook "<name>" denied the request:
  <message>`. Warnings go to the client; audit annotations are logged (there is no audit log yet).
- Configurations of admission itself (webhook configurations, admission policies) never reach webhooks.
"""
from __future__ import annotations

import asyncio
import copy
import json
import logging
import ssl
import urllib.parse
from typing import Any

import aiohttp

from apiserver import errors, request_warnings
from apiserver.admission.chain import DELETE, Attributes, Step
from apiserver.admission.interface import AdmissionAPI
from apiserver.admission.webhook_rules import (CallError, Target, Verdict, Webhook, denial, is_exempt, matching_target,
                                               object_selected, parse_response, review_request, selector_matches)
from apiserver.apply import context as field_managers
from apiserver.informer import StorageCache
from apiserver.kinds.base import Obj
from apiserver.patch import PatchError, json_patch

log = logging.getLogger(__name__)

GROUP = "admissionregistration.k8s.io"
MAX_RESPONSE_BYTES = 3 * 1024 * 1024   # an AdmissionReview answer larger than a request body is refused
MAX_IN_FLIGHT = 64                      # webhook calls this server makes at once


class WebhookCaller:
    """HTTPS calls to webhooks, bounded (in flight, timeout, response size); one per server."""

    def __init__(self, api: AdmissionAPI, max_in_flight: int = MAX_IN_FLIGHT,
                 max_response_bytes: int = MAX_RESPONSE_BYTES):
        self.api = api
        self.max_in_flight = max_in_flight
        self.max_response_bytes = max_response_bytes
        self._slots: asyncio.Semaphore | None = None
        self._contexts: dict[str, ssl.SSLContext] = {}

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.max_in_flight)
        return self._slots

    def _ssl_context(self, ca_bundle: str | None) -> ssl.SSLContext:
        key = ca_bundle or ""
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context()
            if ca_bundle:
                import base64
                context = ssl.create_default_context(cadata=base64.b64decode(ca_bundle).decode("ascii"))
            if len(self._contexts) > 256:
                self._contexts.clear()
            self._contexts[key] = context
        return context

    async def _endpoint(self, service: Obj) -> tuple[str, int]:
        """A ready endpoint address and port of the Service port (by the Service's EndpointSlices)."""
        namespace, name, port = service.get("namespace", ""), service.get("name", ""), service.get("port", 443)
        try:
            svc = await self.api.services.get(namespace, name)
        except errors.APIError:
            raise CallError("", f'service "{name}" not found') from None
        ports = [p for p in (svc.get("spec") or {}).get("ports") or [] if p.get("port") == port]
        if not ports:
            raise CallError("", f'service "{name}" does not have a port {port}')
        service_port = ports[0]
        slices = self.api.registry("discovery.k8s.io", "endpointslices")
        items, _ = await slices.list(namespace)
        for item in items:
            if (item["metadata"].get("labels") or {}).get("kubernetes.io/service-name") != name:
                continue
            target = next((p.get("port") for p in item.get("ports") or []
                           if p.get("name", "") == service_port.get("name", "")), None)
            for endpoint in item.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready", True) and endpoint.get("addresses") and target:
                    return endpoint["addresses"][0], int(target)
        raise CallError("", f'no endpoints available for service "{name}"')

    async def call(self, hook: Webhook, review: Obj) -> Any:
        config = hook.spec.get("clientConfig") or {}
        timeout = hook.timeout
        server_hostname = None
        if config.get("url"):
            url = str(config["url"])
        else:
            service = config.get("service") or {}
            try:
                host, port = await self._endpoint(service)
            except CallError as exc:
                raise CallError(hook.name, exc.reason) from None
            server_hostname = f"{service.get('name')}.{service.get('namespace')}.svc"
            path = service.get("path") or "/"
            url = f"https://{host if ':' not in host else '[' + host + ']'}:{port}{path}"
        split = urllib.parse.urlsplit(url)
        query = f"{split.query}&timeout={timeout}s" if split.query else f"timeout={timeout}s"
        url = shown = urllib.parse.urlunsplit((split.scheme, split.netloc, split.path or "/", query, ""))
        if config.get("service"):
            service = config["service"]
            shown = f"https://{service.get('name')}.{service.get('namespace')}.svc:{service.get('port', 443)}" \
                    f"{service.get('path') or '/'}?timeout={timeout}s"
        if split.scheme != "https":
            raise CallError(hook.name, f'failed to call webhook: Post "{shown}": unsupported protocol scheme '
                                       f'"{split.scheme}"')
        body = json.dumps(review, separators=(",", ":")).encode()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        slots = self._semaphore()
        try:
            await asyncio.wait_for(slots.acquire(), timeout)
        except asyncio.TimeoutError:
            raise CallError(hook.name, f"failed to call webhook: too many webhook calls in flight "
                                       f"({self.max_in_flight}) for {timeout}s") from None
        try:
            remaining = max(0.001, deadline - loop.time())
            connector = aiohttp.TCPConnector(ssl=self._ssl_context(config.get("caBundle")), force_close=True)
            try:
                async with aiohttp.ClientSession(connector=connector,
                                                 timeout=aiohttp.ClientTimeout(total=remaining)) as session:
                    async with session.post(url, data=body, allow_redirects=False, server_hostname=server_hostname,
                                            headers={"Content-Type": "application/json",
                                                     "Accept": "application/json"}) as response:
                        chunks, size = [], 0
                        while size <= self.max_response_bytes:
                            chunk = await response.content.read(self.max_response_bytes + 1 - size)
                            if not chunk:
                                break
                            chunks.append(chunk)
                            size += len(chunk)
                        raw = b"".join(chunks)
                        if size > self.max_response_bytes:
                            raise CallError(hook.name, f"failed to call webhook: the response is larger than "
                                                       f"{self.max_response_bytes} bytes")
                        if response.status >= 300:
                            raise CallError(hook.name, f"failed to call webhook: the server responded with the "
                                                       f"status code {response.status} but did not return more "
                                                       f"information")
            except asyncio.TimeoutError:
                raise CallError(hook.name, f'failed to call webhook: Post "{shown}": context deadline exceeded') \
                    from None
            except aiohttp.ClientConnectorCertificateError as exc:
                raise CallError(hook.name, f'failed to call webhook: Post "{shown}": tls: failed to verify '
                                           f'certificate: {exc.certificate_error}') from None
            except (aiohttp.ClientError, OSError, ssl.SSLError) as exc:
                reason = str(exc) or type(exc).__name__
                if isinstance(exc, aiohttp.ClientConnectorError):
                    reason = f"dial tcp {exc.host}:{exc.port}: connect: connection refused" \
                        if isinstance(exc.os_error, ConnectionRefusedError) else str(exc.os_error)
                raise CallError(hook.name, f'failed to call webhook: Post "{shown}": {reason}') from None
        finally:
            slots.release()
        try:
            return json.loads(raw)
        except ValueError:
            raise CallError(hook.name, "failed to call webhook: invalid character in the response body") from None


class WebhookSource:
    """The webhooks of the stored configurations, in upstream's order (configurations by name)."""

    def __init__(self, api: AdmissionAPI, plural: str, mutating: bool):
        self.api = api
        self.plural = plural
        self.mutating = mutating
        self._cache: StorageCache | None = None

    async def webhooks(self) -> list[Webhook]:
        if self._cache is None:
            self._cache = StorageCache(self.api.registry(GROUP, self.plural))
        configurations = sorted(await self._cache.items(""), key=lambda c: c["metadata"]["name"])
        return [Webhook(c["metadata"]["name"], hook, self.mutating, index, f"{c['metadata'].get('uid')}/{index}")
                for c in configurations for index, hook in enumerate(c.get("webhooks") or [])
                if isinstance(hook, dict)]


def _targets(attributes: Attributes, api: AdmissionAPI) -> tuple[Target, list[Target]]:
    info = attributes.registry.info
    target = Target(info.group, info.version, info.plural, attributes.subresource, info.kind, attributes.namespace,
                    attributes.operation)
    equivalents = []
    custom = getattr(api, "custom_resources", None)
    if custom is not None and custom.owns(info.group, info.plural):
        for version in custom.versions_of(info.group, info.plural):
            if version != info.version:
                equivalents.append(Target(info.group, version, info.plural, attributes.subresource, info.kind,
                                          attributes.namespace, attributes.operation))
    return target, equivalents


class _WebhookPlugin:
    name = ""
    mutating = False
    plural = ""

    def __init__(self, api: AdmissionAPI, caller: WebhookCaller):
        self.api = api
        self.caller = caller
        self.source = WebhookSource(api, self.plural, self.mutating)

    async def start(self, attributes: Attributes) -> Step | None:
        info = attributes.registry.info
        if is_exempt(info.group, info.kind):
            return None
        hooks = await self.source.webhooks()
        if not hooks:
            return None
        target, equivalents = _targets(attributes, self.api)
        candidates = [(hook, matched) for hook in hooks
                      if (matched := matching_target(hook, target, equivalents)) is not None]
        if not candidates:
            return None
        return _WebhookStep(self, attributes, target, candidates)

    async def namespace_labels(self, attributes: Attributes, obj: Obj | None, old: Obj | None) -> dict | None:
        info = attributes.registry.info
        if (info.group, info.plural) == ("", "namespaces"):
            source = obj if obj is not None else old
            return ((source or {}).get("metadata") or {}).get("labels") or {}
        if not attributes.namespace:
            return None  # cluster-scoped: namespaceSelector does not apply
        namespace = await self.api.namespace_cache.get("", attributes.namespace)
        return ((namespace or {}).get("metadata") or {}).get("labels") or {}

    async def invoke(self, hook: Webhook, hook_target: Target, attributes: Attributes, target: Target,
                     obj: Obj | None, old: Obj | None) -> Verdict | None:
        """One call; None when the call failed and the webhook fails open. Refusals raise APIError."""
        if attributes.dry_run and hook.spec.get("sideEffects") not in ("None", "NoneOnDryRun"):
            raise errors.bad_request(f'admission webhook "{hook.name}" does not support dry run')
        review = review_request(hook_target, target, attributes.name, attributes.user, obj, old, attributes.dry_run,
                                field_managers.writer().manager if attributes.user else "")
        uid = review["request"]["uid"]
        try:
            answer = await self.caller.call(hook, review)
            verdict = parse_response(hook.name, uid, answer, self.mutating)
        except CallError as exc:
            if hook.fail_open:
                log.warning("webhook call failed, failing open (failurePolicy Ignore) webhook=%s configuration=%s "
                            "error=%s", hook.name, hook.configuration, exc)
                return None
            raise errors.internal_error(str(exc)) from None
        for warning in verdict.warnings:
            request_warnings.add(warning)
        for key, value in verdict.audit_annotations.items():
            log.info("webhook audit annotation %s/%s=%s request=%s", hook.name, key, value, uid)
        if not verdict.allowed:
            raise denial(hook.name, verdict.status)
        return verdict


class _WebhookStep(Step):
    def __init__(self, plugin: _WebhookPlugin, attributes: Attributes, target: Target,
                 candidates: list[tuple[Webhook, Target]]):
        self.plugin = plugin
        self.attributes = attributes
        self.target = target
        self.candidates = candidates

    async def _selected(self, obj: Obj | None, old: Obj | None) -> list[tuple[Webhook, Target]]:
        labels = await self.plugin.namespace_labels(self.attributes, obj, old)
        return [(hook, target) for hook, target in self.candidates
                if (labels is None or selector_matches(hook.spec.get("namespaceSelector"), labels))
                and object_selected(hook, obj, old)]

    async def _old_for_delete(self) -> Obj | None:
        try:
            return await self.attributes.registry.get(self.attributes.namespace, self.attributes.name)
        except errors.APIError:
            return None

    async def admit(self, obj: Obj, old: Obj | None) -> Obj:
        if not self.plugin.mutating:
            return obj
        selected = await self._selected(obj, old)
        invoked_if_needed: list[tuple[Webhook, Target]] = []
        changed_after: dict[str, bool] = {}
        for hook, hook_target in selected:
            before = obj
            obj = await self._mutate(hook, hook_target, obj, old)
            changed = obj != before
            for earlier in invoked_if_needed:
                changed_after[earlier[0].uid] = changed_after.get(earlier[0].uid, False) or changed
            if hook.spec.get("reinvocationPolicy") == "IfNeeded":
                invoked_if_needed.append((hook, hook_target))
                changed_after.setdefault(hook.uid, False)
        for hook, hook_target in invoked_if_needed:  # one reinvocation round, as upstream
            if changed_after.get(hook.uid):
                obj = await self._mutate(hook, hook_target, obj, old)
        return obj

    async def _mutate(self, hook: Webhook, hook_target: Target, obj: Obj, old: Obj | None) -> Obj:
        verdict = await self.plugin.invoke(hook, hook_target, self.attributes, self.target, obj, old)
        if verdict is None or not verdict.patch:
            return obj
        versioned = review_request(hook_target, self.target, "", None, obj, None, False)["request"]["object"]
        try:
            patched = json_patch(copy.deepcopy(versioned), verdict.patch)
        except PatchError as exc:
            raise errors.internal_error(str(exc)) from None
        if not isinstance(patched, dict):
            raise errors.internal_error(f'admission webhook "{hook.name}" returned a patch that does not leave an '
                                        "object")
        patched["apiVersion"], patched["kind"] = obj.get("apiVersion"), obj.get("kind")
        meta = patched.setdefault("metadata", {}) if isinstance(patched.get("metadata"), dict) else None
        if meta is None:
            raise errors.internal_error(f'admission webhook "{hook.name}" removed the object\'s metadata')
        self.attributes.registry.strategy.default(patched)  # decoded and defaulted again, as upstream
        return patched

    async def validate(self, obj: Obj | None, old: Obj | None) -> None:
        if self.attributes.operation == DELETE and obj is None:
            old = await self._old_for_delete()
        if self.plugin.mutating:
            if self.attributes.operation == DELETE:  # mutating webhooks see deletes too, and may not patch them
                for hook, hook_target in await self._selected(None, old):
                    verdict = await self.plugin.invoke(hook, hook_target, self.attributes, self.target, None, old)
                    if verdict is not None and verdict.patch:
                        raise errors.internal_error(f'admission webhook "{hook.name}" attempted to modify the '
                                                    "object, which is not supported for this operation")
            return
        selected = await self._selected(obj, old)
        if not selected:
            return
        results = await asyncio.gather(*(self.plugin.invoke(hook, hook_target, self.attributes, self.target, obj, old)
                                         for hook, hook_target in selected), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result


class MutatingAdmissionWebhook(_WebhookPlugin):
    name = "MutatingAdmissionWebhook"
    mutating = True
    plural = "mutatingwebhookconfigurations"


class ValidatingAdmissionWebhook(_WebhookPlugin):
    name = "ValidatingAdmissionWebhook"
    mutating = False
    plural = "validatingwebhookconfigurations"
