"""The definition record and the fields every kind shares."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Definition:
    description: str
    fields: dict[str, tuple[str, str]]
    required: tuple[str, ...] = ()


API_VERSION = ("string", "APIVersion names the versioned schema of this object (group/version, or just the "
               "version for the core group). The server rejects versions it does not serve.")
KIND = ("string", "Kind names the REST resource this object represents, in CamelCase. Cannot be updated.")
METADATA = ("meta.ObjectMeta", "Standard object metadata: name, namespace, labels, annotations and the fields "
            "the server maintains.")
LIST_METADATA = ("meta.ListMeta", "Standard list metadata.")


def kind_fields(spec: tuple[str, str] | None = None, status: tuple[str, str] | None = None,
                **more: tuple[str, str]) -> dict[str, tuple[str, str]]:
    """apiVersion, kind, metadata, then spec/status (when the kind has them) and any other fields."""
    fields = {"apiVersion": API_VERSION, "kind": KIND, "metadata": METADATA}
    if spec:
        fields["spec"] = spec
    if status:
        fields["status"] = status
    fields.update(more)
    return fields
