"""Service account issuer discovery (upstream's ServiceAccountIssuerDiscovery): `/.well-known/openid-configuration`
and `/openid/v1/jwks`, so a relying party can validate our service account tokens with standard OIDC tooling.
Authenticated and authorized like every path (the default policy lets `system:serviceaccounts` read them:
ClusterRole `system:service-account-issuer-discovery`); served only when the issuer is an https URL, as upstream."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from apiserver import errors

CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
CACHE_CONTROL = "public, max-age=3600"


def configuration(issuer: str, jwks_uri: str) -> dict[str, Any]:
    return {"issuer": issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["RS256"]}


class OIDCRoutes:
    def __init__(self, api: Any):
        self.api = api

    def add_routes(self, app: web.Application) -> None:
        for path in (CONFIGURATION_PATH, CONFIGURATION_PATH + "/"):
            app.router.add_get(path, self.configuration)
        for path in (JWKS_PATH, JWKS_PATH + "/"):
            app.router.add_get(path, self.jwks)

    def _issuer(self) -> Any:
        issuer = getattr(self.api, "token_issuer", None)
        if issuer is None or not issuer.issuer.startswith("https://"):
            raise errors.APIError(404, "NotFound", "the server could not find the requested resource", {})
        return issuer

    async def configuration(self, request: web.Request) -> web.Response:
        issuer = self._issuer()
        body = configuration(issuer.issuer, issuer.jwks_uri)
        return web.Response(body=json.dumps(body, separators=(",", ":")).encode(), content_type="application/json",
                            headers={"Cache-Control": CACHE_CONTROL})

    async def jwks(self, request: web.Request) -> web.Response:
        body = self._issuer().jwks()
        return web.Response(body=json.dumps(body, separators=(",", ":")).encode(),
                            headers={"Content-Type": "application/jwk-set+json", "Cache-Control": CACHE_CONTROL})
