"""Server-side apply and managed fields (metadata.managedFields), pure functions over JSON objects.

`fieldpath`: field sets (FieldsV1) of objects; `managed`: managedFields entries, the Update bookkeeping
and the Apply merge with conflicts; `context`: who is writing (field manager, force) for the request.
"""
