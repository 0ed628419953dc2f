"""ServiceAccount (`kubectl explain serviceaccount`)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

SERVICE_ACCOUNTS: dict[str, Definition] = {
    "core.ServiceAccount": Definition(
        "An identity for processes in pods: its tokens authenticate as system:serviceaccount:<namespace>:<name>.",
        kind_fields(secrets=("[]object", "Secrets pods running as this account may use (legacy token Secrets)."),
                    imagePullSecrets=("[]core.LocalObjectReference", "Registry credentials added to pods that run "
                                                                      "as this account and name none."),
                    automountServiceAccountToken=("boolean", "Whether pods running as this account get a token "
                                                             "volume unless they say otherwise."))),
}
