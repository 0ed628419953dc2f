"""Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`): `decode.py` decodes them
into JSON objects with the schemas of `core.py`, `workloads.py`, `rbac.py`, `certificates.py` (built from
`fields.py`)."""
from apiserver.protobuf.decode import CONTENT_TYPE, MAGIC, SCHEMAS, ProtobufError, decode_object

__all__ = ["CONTENT_TYPE", "MAGIC", "SCHEMAS", "ProtobufError", "decode_object"]
