"""apiextensions.k8s.io/v1 CustomResourceDefinition (written for shipmate; field names and types as upstream's)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_CONDITION = {
    "type": ("string", "Established, NamesAccepted, Terminating or KubernetesAPIApprovalPolicyConformant."),
    "status": ("string", "True, False or Unknown."),
    "lastTransitionTime": ("Time", "Last time the condition changed status."),
    "reason": ("string", "Machine-readable reason of the last transition."),
    "message": ("string", "Human-readable details of the last transition."),
    "observedGeneration": ("integer", "The generation of the spec the condition was set for."),
}

APIEXTENSIONS: dict[str, Definition] = {
    "apiextensions.CustomResourceDefinition": Definition(
        "A CustomResourceDefinition adds a resource to the API: its group, names, versions and schemas. "
        "Its name must be <plural>.<group>.",
        kind_fields(("apiextensions.CustomResourceDefinitionSpec", "The resource the API should serve."),
                    ("apiextensions.CustomResourceDefinitionStatus", "What the server made of the definition: "
                                                                     "accepted names, conditions, stored "
                                                                     "versions. Read-only.")),
        required=("spec",)),
    "apiextensions.CustomResourceDefinitionSpec": Definition("The resource a CustomResourceDefinition defines.", {
        "group": ("string", "API group of the resource (/apis/<group>/…); a domain with at least one dot."),
        "names": ("apiextensions.CustomResourceDefinitionNames", "Names of the resource and its kind."),
        "scope": ("string", "Cluster or Namespaced."),
        "versions": ("[]apiextensions.CustomResourceDefinitionVersion", "The versions served; exactly one is "
                                                                        "the storage version."),
        "conversion": ("apiextensions.CustomResourceConversion", "How objects convert between versions. "
                                                                 "Default None (only apiVersion changes)."),
        "preserveUnknownFields": ("boolean", "Deprecated: keep fields the schema does not specify. Must be false; "
                                             "use x-kubernetes-preserve-unknown-fields in the schema."),
    }, required=("group", "names", "scope", "versions")),
    "apiextensions.CustomResourceDefinitionNames": Definition("Names of a custom resource.", {
        "plural": ("string", "Name of the resource in URLs (/apis/<group>/<version>/<plural>); lowercase."),
        "singular": ("string", "Singular name (kubectl get <singular>). Default: the kind in lowercase."),
        "shortNames": ("[]string", "Short names kubectl accepts (kubectl get <short>)."),
        "kind": ("string", "The kind of the objects, in CamelCase."),
        "listKind": ("string", "The kind of lists. Default: <kind>List."),
        "categories": ("[]string", "Groups of resources this one belongs to (kubectl get all)."),
    }, required=("plural", "kind")),
    "apiextensions.CustomResourceDefinitionVersion": Definition("One version of a custom resource.", {
        "name": ("string", "The version (/apis/<group>/<name>/…), e.g. v1, v1beta1."),
        "served": ("boolean", "Whether the version is served through the API."),
        "storage": ("boolean", "Whether objects are stored as this version (exactly one version)."),
        "deprecated": ("boolean", "Whether requests for this version get a deprecation warning."),
        "deprecationWarning": ("string", "The warning sent instead of the default one."),
        "schema": ("apiextensions.CustomResourceValidation", "The schema objects of this version must follow."),
        "subresources": ("apiextensions.CustomResourceSubresources", "The status and scale subresources."),
        "additionalPrinterColumns": ("[]apiextensions.CustomResourceColumnDefinition", "Columns kubectl get "
                                                                                      "shows besides NAME."),
        "selectableFields": ("[]apiextensions.SelectableField", "Fields usable in field selectors."),
    }, required=("name", "served", "storage")),
    "apiextensions.CustomResourceValidation": Definition("A version's schema.", {
        "openAPIV3Schema": ("object", "A structural OpenAPI v3 schema of the objects (with the "
                                      "x-kubernetes-* extensions)."),
    }),
    "apiextensions.CustomResourceSubresources": Definition("Subresources of a custom resource.", {
        "status": ("object", "When set (to {}), status is written through /status only."),
        "scale": ("apiextensions.CustomResourceSubresourceScale", "When set, /scale reads and writes the "
                                                                  "replicas at these paths."),
    }),
    "apiextensions.CustomResourceSubresourceScale": Definition("The paths of the scale subresource.", {
        "specReplicasPath": ("string", "JSON path of the desired replicas, under .spec."),
        "statusReplicasPath": ("string", "JSON path of the observed replicas, under .status."),
        "labelSelectorPath": ("string", "JSON path of the pods' label selector (a string), under .spec or "
                                        ".status."),
    }, required=("specReplicasPath", "statusReplicasPath")),
    "apiextensions.CustomResourceColumnDefinition": Definition("A column of kubectl get.", {
        "name": ("string", "Column header."),
        "type": ("string", "integer, number, string, boolean or date."),
        "format": ("string", "An OpenAPI format of the type (int32, int64, float, double, byte, date, "
                             "date-time, password)."),
        "description": ("string", "What the column shows."),
        "priority": ("integer", "0 shows the column by default; higher only with -o wide."),
        "jsonPath": ("string", "A simple JSON path (.spec.replicas) to the value of the column."),
    }, required=("name", "type", "jsonPath")),
    "apiextensions.SelectableField": Definition("A field selectable with --field-selector.", {
        "jsonPath": ("string", "A simple JSON path to a string, integer or boolean field (not metadata)."),
    }, required=("jsonPath",)),
    "apiextensions.CustomResourceConversion": Definition("How objects convert between versions.", {
        "strategy": ("string", "None (only apiVersion changes) or Webhook."),
        "webhook": ("apiextensions.WebhookConversion", "The conversion webhook (strategy Webhook)."),
    }, required=("strategy",)),
    "apiextensions.WebhookConversion": Definition("A conversion webhook.", {
        "clientConfig": ("apiextensions.WebhookClientConfig", "How to call the webhook."),
        "conversionReviewVersions": ("[]string", "ConversionReview versions the webhook accepts."),
    }, required=("conversionReviewVersions",)),
    "apiextensions.WebhookClientConfig": Definition("How to call a webhook (exactly one of url and service).", {
        "url": ("string", "https://host[:port][/path] of the webhook."),
        "service": ("apiextensions.ServiceReference", "A Service in the cluster serving the webhook."),
        "caBundle": ("string", "PEM CA certificates (base64) the webhook's serving certificate is checked "
                               "against."),
    }),
    "apiextensions.ServiceReference": Definition("A Service serving a webhook.", {
        "namespace": ("string", "Namespace of the Service."),
        "name": ("string", "Name of the Service."),
        "path": ("string", "URL path of the webhook."),
        "port": ("integer", "Port of the Service. Default 443."),
    }, required=("namespace", "name")),
    "apiextensions.CustomResourceDefinitionStatus": Definition("What the server made of a CRD.", {
        "conditions": ("[]apiextensions.CustomResourceDefinitionCondition", "Established, NamesAccepted, "
                                                                           "Terminating."),
        "acceptedNames": ("apiextensions.CustomResourceDefinitionNames", "The names actually served (names "
                                                                         "another CRD holds are not)."),
        "storedVersions": ("[]string", "Every version objects were ever stored as."),
    }),
    "apiextensions.CustomResourceDefinitionCondition": Definition("A condition of a CRD.", _CONDITION,
                                                                  required=("type", "status")),
}
