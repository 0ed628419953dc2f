"""The certificates controllers: the kubelet client CSR auto-approver, the CA signer and the bootstrap token
cleaner (kube-controller-manager's csrapproving, csrsigning and tokencleaner), run by the leader."""
