"""Generated from apiserver/storage/etcd_proto/ by `python -m apiserver.storage.etcd_generate`."""
