"""Field documentation and types of the kinds we serve, for the OpenAPI documents (`kubectl explain`).

Written for shipmate (not copied from upstream's swagger): each definition is a description, its fields
as (type, description) and its required fields. Type notation: "string", "integer", "number",
"boolean", "object" (free-form), "IntOrString", "Quantity", "Time", a definition name ("core.PodSpec"),
"[]<type>" (a list) and "map[string]<type>". `schema.py` turns them into OpenAPI v3 schemas.
"""
from __future__ import annotations

from apiserver.openapi_schemas.admissionregistration import ADMISSIONREGISTRATION, APIREGISTRATION
from apiserver.openapi_schemas.apiextensions import APIEXTENSIONS
from apiserver.openapi_schemas.apps import APPS
from apiserver.openapi_schemas.batch import BATCH
from apiserver.openapi_schemas.apps_sets import APPS_SETS
from apiserver.openapi_schemas.autoscaling import AUTOSCALING
from apiserver.openapi_schemas.certificates import CERTIFICATES
from apiserver.openapi_schemas.cluster import CLUSTER
from apiserver.openapi_schemas.common import Definition
from apiserver.openapi_schemas.meta import META
from apiserver.openapi_schemas.networking import NETWORKING
from apiserver.openapi_schemas.pod_parts import POD_PARTS, REPLACEMENTS
from apiserver.openapi_schemas.pods import PODS
from apiserver.openapi_schemas.policy import POLICY
from apiserver.openapi_schemas.rbac import RBAC
from apiserver.openapi_schemas.serviceaccounts import SERVICE_ACCOUNTS
from apiserver.openapi_schemas.services import SERVICES
from apiserver.openapi_schemas.storage import STORAGE

DEFINITIONS: dict[str, Definition] = {**META, **PODS, **APPS, **SERVICES, **CLUSTER, **RBAC, **CERTIFICATES, **BATCH,
                                   **APPS_SETS, **NETWORKING, **POLICY, **AUTOSCALING, **SERVICE_ACCOUNTS,
                                   **STORAGE, **APIEXTENSIONS, **ADMISSIONREGISTRATION, **POD_PARTS,
                                   **APIREGISTRATION}
for (_name, _field), _type in REPLACEMENTS.items():  # free-form fields now described by their own types
    _description = DEFINITIONS[_name].fields[_field][1]
    DEFINITIONS[_name].fields[_field] = (_type, _description)

