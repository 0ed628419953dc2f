"""Field documentation and types of the kinds we serve, for the OpenAPI documents (`kubectl explain`).

Written for shipmate (not copied from upstream's swagger): each definition is a description, its fields
as (type, description) and its required fields. Type notation: "string", "integer", "number",
"boolean", "object" (free-form), "IntOrString", "Quantity", "Time", a definition name ("core.PodSpec"),
"[]<type>" (a list) and "map[string]<type>". `schema.py` turns them into OpenAPI v3 schemas.
"""
from __future__ import annotations

from apiserver.openapi_schemas.apps import APPS
from apiserver.openapi_schemas.certificates import CERTIFICATES
from apiserver.openapi_schemas.cluster import CLUSTER
from apiserver.openapi_schemas.common import Definition
from apiserver.openapi_schemas.meta import META
from apiserver.openapi_schemas.pods import PODS
from apiserver.openapi_schemas.rbac import RBAC
from apiserver.openapi_schemas.services import SERVICES

DEFINITIONS: dict[str, Definition] = {**META, **PODS, **APPS, **SERVICES, **CLUSTER, **RBAC, **CERTIFICATES}
