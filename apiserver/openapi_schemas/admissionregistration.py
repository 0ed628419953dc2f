"""admissionregistration.k8s.io/v1 webhook configurations (written for shipmate; field names and types as
upstream's)."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition, kind_fields

_WEBHOOK_FIELDS = {
    "name": ("string", "Fully qualified name of the webhook (at least three dot-separated segments)."),
    "clientConfig": ("admissionregistration.WebhookClientConfig", "How to call the webhook."),
    "rules": ("[]admissionregistration.RuleWithOperations", "The operations and resources the webhook is called "
                                                            "for."),
    "failurePolicy": ("string", "Fail (default: refuse the request when the call fails) or Ignore."),
    "matchPolicy": ("string", "Equivalent (default: other versions of a matched resource too) or Exact."),
    "namespaceSelector": ("meta.LabelSelector", "Only objects in namespaces with these labels. Default: all."),
    "objectSelector": ("meta.LabelSelector", "Only objects (new or old) with these labels. Default: all."),
    "sideEffects": ("string", "None or NoneOnDryRun: whether calling the webhook has side effects."),
    "timeoutSeconds": ("integer", "Seconds to wait for the webhook, 1 to 30. Default 10."),
    "admissionReviewVersions": ("[]string", "AdmissionReview versions the webhook accepts, in order of "
                                            "preference (v1)."),
    "matchConditions": ("[]object", "CEL conditions (stored, not evaluated by this server)."),
}

ADMISSIONREGISTRATION: dict[str, Definition] = {
    "admissionregistration.ValidatingWebhookConfiguration": Definition(
        "Webhooks that accept or refuse objects (not changing them).",
        kind_fields(webhooks=("[]admissionregistration.ValidatingWebhook", "The webhooks, called in parallel."))),
    "admissionregistration.MutatingWebhookConfiguration": Definition(
        "Webhooks that may change objects (a JSONPatch answer) before they are validated and stored.",
        kind_fields(webhooks=("[]admissionregistration.MutatingWebhook", "The webhooks, called in order."))),
    "admissionregistration.ValidatingWebhook": Definition("A validating admission webhook.", _WEBHOOK_FIELDS,
                                                          required=("name", "clientConfig", "sideEffects",
                                                                    "admissionReviewVersions")),
    "admissionregistration.MutatingWebhook": Definition("A mutating admission webhook.", {
        **_WEBHOOK_FIELDS,
        "reinvocationPolicy": ("string", "Never (default) or IfNeeded: call again when a later webhook changed "
                                         "the object."),
    }, required=("name", "clientConfig", "sideEffects", "admissionReviewVersions")),
    "admissionregistration.WebhookClientConfig": Definition("How to call a webhook (exactly one of url and "
                                                            "service).", {
        "url": ("string", "https://host[:port][/path] of the webhook."),
        "service": ("admissionregistration.ServiceReference", "A Service in the cluster serving the webhook."),
        "caBundle": ("string", "PEM CA certificates (base64) the webhook's serving certificate is checked "
                               "against; the system roots when empty."),
    }),
    "admissionregistration.ServiceReference": Definition("A Service serving a webhook.", {
        "namespace": ("string", "Namespace of the Service."),
        "name": ("string", "Name of the Service."),
        "path": ("string", "URL path of the webhook."),
        "port": ("integer", "Port of the Service. Default 443."),
    }, required=("namespace", "name")),
    "admissionregistration.RuleWithOperations": Definition("Operations and resources a webhook is called for.", {
        "operations": ("[]string", "CREATE, UPDATE, DELETE, CONNECT or *."),
        "apiGroups": ("[]string", "API groups (\"\" is the core group, * all)."),
        "apiVersions": ("[]string", "API versions (* all)."),
        "resources": ("[]string", "Resources: pods, pods/status, pods/*, */status, * or */*."),
        "scope": ("string", "Cluster, Namespaced or * (default)."),
    }),
}

APIREGISTRATION: dict[str, Definition] = {
    "apiregistration.APIService": Definition(
        "An APIService says which server serves a group-version: this one (Local, no service) or an extension "
        "API server behind a Service (aggregation: not proxied by this server).",
        kind_fields(("apiregistration.APIServiceSpec", "The group-version and who serves it."),
                    ("apiregistration.APIServiceStatus", "Whether it is available."))),
    "apiregistration.APIServiceSpec": Definition("The group-version and who serves it.", {
        "service": ("apiregistration.ServiceReference", "The Service of an extension API server; none for "
                                                        "group-versions this server serves."),
        "group": ("string", "The API group."), "version": ("string", "The API version."),
        "insecureSkipTLSVerify": ("boolean", "Do not verify the extension server's certificate."),
        "caBundle": ("string", "PEM CA (base64) the extension server's certificate is checked against."),
        "groupPriorityMinimum": ("integer", "Priority of the group (higher first), 1-20000."),
        "versionPriority": ("integer", "Priority of the version within its group, 1-1000."),
    }, required=("groupPriorityMinimum", "versionPriority")),
    "apiregistration.ServiceReference": Definition("A Service of an extension API server.", {
        "namespace": ("string", "Namespace of the Service."), "name": ("string", "Name of the Service."),
        "port": ("integer", "Port of the Service. Default 443."),
    }),
    "apiregistration.APIServiceStatus": Definition("Whether an APIService is available.", {
        "conditions": ("[]apiregistration.APIServiceCondition", "Available."),
    }),
    "apiregistration.APIServiceCondition": Definition("A condition of an APIService.", {
        "type": ("string", "Available."), "status": ("string", "True, False or Unknown."),
        "lastTransitionTime": ("Time", "Last time the status changed."),
        "reason": ("string", "Machine-readable reason."), "message": ("string", "Human-readable details."),
    }, required=("type", "status")),
}
