"""A kopf operator against the `make up` cluster (needs kopf: `pip install kopf` in the test environment, or
$KOPF_PYTHON naming an interpreter that has it): create/update/delete handlers, status patches, finalizers,
adopted children garbage collected — as on real Kubernetes."""
import pytest

from tests.crd_kopf_flow import kopf_python, run_operator_flow
from tests.e2e.cluster import ADMIN_KUBECONFIG, Kubectl, unique_name

pytestmark = pytest.mark.skipif(kopf_python() is None, reason="kopf is not installed (pip install kopf)")


def test_kopf_operator_on_the_cluster(kubectl: Kubectl, namespace: str, tmp_path):
    def run(*args, input=None, check=True):
        return kubectl.run(*args, stdin=input, check=check)
    run_operator_flow(run, ADMIN_KUBECONFIG, namespace, tmp_path, f"{unique_name('kopf')}.example.com")
