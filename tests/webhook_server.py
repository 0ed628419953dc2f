"""A small admission webhook server for tests: HTTPS with a CA of its own, AdmissionReview v1 in and out.

Paths: /validate refuses objects labelled `deny=yes` (message "objects labelled deny=yes are not allowed", code
403) and answers with a warning and an audit annotation; /mutate adds the label `mutated=yes` with a
JSONPatch; /slow sleeps `slow_seconds` first; /big answers with more than 3 MiB; /garbage answers something that
is not an AdmissionReview. Every request received is kept in `requests`. Runnable as a script too (the e2e
pod): `python webhook_server.py PORT CERT KEY`.
"""
from __future__ import annotations

import base64
import http.server
import json
import ssl
import sys
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "test-webhook"

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length) or b"{}")
        self.server.requests.append((self.path, review))
        request = review.get("request") or {}
        path = self.path.split("?", 1)[0]
        response = {"uid": request.get("uid"), "allowed": True}
        if path == "/slow":
            time.sleep(self.server.slow_seconds)
        if path == "/validate":
            labels = ((request.get("object") or request.get("oldObject") or {}).get("metadata") or {}).get(
                "labels") or {}
            if labels.get("deny") == "yes":
                response = {"uid": request.get("uid"), "allowed": False,
                            "status": {"code": 403, "message": "objects labelled deny=yes are not allowed"}}
            else:
                response["warnings"] = ["checked by the test webhook"]
                response["auditAnnotations"] = {"checked": "true"}
        if path == "/mutate" and request.get("operation") in ("CREATE", "UPDATE"):
            labels = ((request.get("object") or {}).get("metadata") or {}).get("labels")
            patch = [{"op": "add", "path": "/metadata/labels/mutated", "value": "yes"}] if labels else \
                [{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]
            response["patchType"] = "JSONPatch"
            response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
        body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}
        data = json.dumps(body).encode()
        if path == "/big":
            data = json.dumps({**body, "padding": "x" * (3 * 1024 * 1024 + 10)}).encode()
        if path == "/garbage":
            data = b'{"kind":"Something"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class WebhookServer:
    def __init__(self, cert_pem: bytes, key_pem: bytes, host: str = "127.0.0.1", port: int = 0,
                 files: tuple[str, str] | None = None):
        """`files`: the certificate and key already on disk (the e2e pod's root is read-only); otherwise the PEMs
        are written to a temporary directory, as ssl loads a chain only from files."""
        import os
        import tempfile
        if files is None:
            directory = tempfile.mkdtemp(prefix="webhook-")
            files = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
            for path, data in zip(files, (cert_pem, key_pem)):
                with open(path, "wb") as f:
                    f.write(data)
        cert_path, key_path = files
        self.httpd = http.server.ThreadingHTTPServer((host, port), Handler)
        self.httpd.requests = []
        self.httpd.slow_seconds = 3.0
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_path, key_path)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def requests(self):
        return self.httpd.requests

    def start(self) -> "WebhookServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":
    port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    server = WebhookServer(b"", b"", "0.0.0.0", port, files=(cert, key))
    print(f"serving on {server.port}", flush=True)
    server.httpd.serve_forever()
