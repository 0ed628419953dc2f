"""meta/v1 types shared by every kind."""
from __future__ import annotations

from apiserver.openapi_schemas.common import Definition

META: dict[str, Definition] = {
    "meta.ObjectMeta": Definition(
        "Metadata every persisted object carries; some of it is set by clients, the rest by the server.", {
            "name": ("string", "Name of the object, unique within its namespace (or cluster-wide for cluster-scoped "
                               "kinds). Cannot be updated."),
            "generateName": ("string", "Prefix the server completes with random characters to name the object "
                                       "when no name is given."),
            "namespace": ("string", "Namespace the object lives in; empty for cluster-scoped kinds."),
            "uid": ("string", "Unique identifier the server assigns on creation. Read-only."),
            "resourceVersion": ("string", "Opaque version of this object, changed on every write. Used for "
                                          "optimistic concurrency and to resume watches. Read-only."),
            "generation": ("integer", "Sequence number of changes to the desired state. Read-only."),
            "creationTimestamp": ("Time", "When the server created the object. Read-only."),
            "deletionTimestamp": ("Time", "When the object will be (or was asked to be) deleted; set by the server "
                                          "when a graceful deletion starts. Read-only."),
            "deletionGracePeriodSeconds": ("integer", "Seconds the object has to terminate before it is removed. "
                                                      "Read-only."),
            "labels": ("map[string]string", "Key/value pairs used to organize and select objects."),
            "annotations": ("map[string]string", "Key/value pairs for tools and people; not used for selection."),
            "ownerReferences": ("[]meta.OwnerReference", "Objects this one depends on; when all owners are gone the "
                                                         "garbage collector deletes it."),
            "finalizers": ("[]string", "Names of things that must happen before the object is removed; deletion "
                                       "waits until the list is empty."),
            "managedFields": ("[]meta.ManagedFieldsEntry", "Which field manager owns which fields (server-side "
                                                           "apply bookkeeping). Normally not edited by hand."),
        }),
    "meta.ListMeta": Definition("Metadata of a list response.", {
        "resourceVersion": ("string", "Version of the collection the list was read at."),
        "continue": ("string", "Token to fetch the next page, when the list was limited."),
        "remainingItemCount": ("integer", "Items left after this page, when known."),
    }),
    "meta.OwnerReference": Definition("Points at an owner of the object (in the same namespace).", {
        "apiVersion": ("string", "API version of the owner."),
        "kind": ("string", "Kind of the owner."),
        "name": ("string", "Name of the owner."),
        "uid": ("string", "UID of the owner."),
        "controller": ("boolean", "Whether the owner is the managing controller (at most one owner is)."),
        "blockOwnerDeletion": ("boolean", "With foreground deletion, the owner is only removed after this object."),
    }, required=("apiVersion", "kind", "name", "uid")),
    "meta.ManagedFieldsEntry": Definition("The fields one manager owns, and how it last wrote them.", {
        "manager": ("string", "Name of the field manager (the fieldManager of its requests)."),
        "operation": ("string", "Apply or Update."),
        "apiVersion": ("string", "API version the fields are described in."),
        "time": ("Time", "When the manager last changed its set."),
        "fieldsType": ("string", "Format of fieldsV1; always FieldsV1."),
        "fieldsV1": ("object", "The owned fields as a FieldsV1 tree."),
        "subresource": ("string", "Subresource the writes went through (e.g. status), empty for the object."),
    }),
    "meta.LabelSelector": Definition("A label query: all requirements are ANDed; an empty selector matches "
                                     "everything.", {
        "matchLabels": ("map[string]string", "Labels that must be present with these values."),
        "matchExpressions": ("[]meta.LabelSelectorRequirement", "Set-based requirements."),
    }),
    "meta.LabelSelectorRequirement": Definition("One set-based label requirement.", {
        "key": ("string", "The label key."),
        "operator": ("string", "In, NotIn, Exists or DoesNotExist."),
        "values": ("[]string", "Values for In/NotIn; empty for Exists/DoesNotExist."),
    }, required=("key", "operator")),
}
