"""The admin kubeconfig the server writes at start (atomic, mode 0600): the cluster CA and the
admin client certificate (CN kubernetes-admin, O system:masters) embedded as base64 data."""
from __future__ import annotations

import base64

import yaml

from shipmate.files import write_atomically


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def admin_kubeconfig(server_url: str, ca_cert_pem: bytes, client_cert_pem: bytes, client_key_pem: bytes,
                     name: str = "shipmate") -> dict:
    user = "kubernetes-admin"
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server_url,
                                                "certificate-authority-data": _b64(ca_cert_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(client_cert_pem),
                                          "client-key-data": _b64(client_key_pem)}}],
        "contexts": [{"name": f"{user}@{name}", "context": {"cluster": name, "user": user}}],
        "current-context": f"{user}@{name}",
    }


def write_kubeconfig(path: str, config: dict) -> None:
    write_atomically(path, yaml.safe_dump(config, default_flow_style=False).encode(), 0o600)
