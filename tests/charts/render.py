"""`helm template`, through helm-python-sdk (PyPI; binds Helm's Go SDK): prints a chart's manifests as one YAML
stream, `# Source:` comments and Helm's install order included. Run it with a Python that has the SDK:

    V/bin/python tests/charts/render.py tests/charts/keyval demo shop > tests/charts/keyval-rendered.yaml
"""
import re
import sys

import helm_python as helm

# Helm's InstallOrder (pkg/release/v1/util/kind_sorter.go), the kinds this repository's charts use.
INSTALL_ORDER = ["Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodDisruptionBudget",
                 "ServiceAccount", "Secret", "ConfigMap", "StorageClass", "PersistentVolume",
                 "PersistentVolumeClaim", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Service",
                 "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment", "HorizontalPodAutoscaler",
                 "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress"]


def kind_rank(manifest: str) -> int:
    found = re.search(r"^kind: (\S+)", manifest, re.MULTILINE)
    kind = found.group(1) if found else ""
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def main(chart_dir: str, release: str, namespace: str) -> None:
    rendered = helm.Chart.load(chart_dir).render(None, name=release, namespace=namespace, is_install=True)
    documents = []
    for path, text in rendered.items():
        if not path.endswith((".yaml", ".yml")):
            continue
        for manifest in re.split(r"^---\s*$", text, flags=re.MULTILINE):
            if manifest.strip():
                documents.append((kind_rank(manifest), path, manifest.strip("\n")))
    for _, path, manifest in sorted(documents, key=lambda item: (item[0], item[1])):
        print(f"---\n# Source: {path}\n{manifest}")


if __name__ == "__main__":
    main(*sys.argv[1:4])
