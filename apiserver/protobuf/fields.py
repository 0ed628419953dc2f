"""The building blocks of our protobuf schemas: a message is {field number: Field}; ObjectMeta is shared
by every kind. Field numbers are upstream's generated.proto ones."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # string | int | bool | message | inline | map | bytesmap | quantity | quantitymap | intorstring | time
    schema: "dict[int, Field] | None" = None
    repeated: bool = False
    keep_zero: bool = False  # JSON without omitempty: "", 0 and false are written out


TIME = "time"
OWNER_REFERENCE = {1: Field("kind", "string"), 3: Field("name", "string"), 4: Field("uid", "string"),
                   5: Field("apiVersion", "string"), 6: Field("controller", "bool"),
                   7: Field("blockOwnerDeletion", "bool")}
OBJECT_META = {
    1: Field("name", "string"), 2: Field("generateName", "string"), 3: Field("namespace", "string"),
    5: Field("uid", "string"), 6: Field("resourceVersion", "string"), 7: Field("generation", "int"),
    8: Field("creationTimestamp", TIME), 9: Field("deletionTimestamp", TIME),
    10: Field("deletionGracePeriodSeconds", "int"), 11: Field("labels", "map"), 12: Field("annotations", "map"),
    13: Field("ownerReferences", "message", OWNER_REFERENCE, repeated=True),
    14: Field("finalizers", "string", repeated=True),
}
