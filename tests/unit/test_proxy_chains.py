"""Chain names must equal kube-proxy's, so rules read the same as on any Kubernetes node."""
from agent.proxy import chains


def test_service_chain_names_match_upstream_examples():
    # Values from kube-proxy's own proxier_test.go and from real clusters' iptables-save output.
    assert chains.cluster_policy_chain("ns1/svc1:p80", "tcp") == "KUBE-SVC-XPGD46QRK7WJZT7O"
    assert chains.cluster_policy_chain("default/kubernetes:https", "TCP") == "KUBE-SVC-NPX46M4PTMTKRN6Y"
    assert chains.cluster_policy_chain("kube-system/kube-dns:dns", "udp") == "KUBE-SVC-TCOU7JCQXEZGVUNU"
    assert chains.cluster_policy_chain("kube-system/kube-dns:dns-tcp", "tcp") == "KUBE-SVC-ERIFXISQEP7F7OF4"
    assert chains.cluster_policy_chain("kube-system/kube-dns:metrics", "tcp") == "KUBE-SVC-JD5MR3NA4I4DYORP"
    assert chains.cluster_policy_chain("default/nginx", "tcp") == "KUBE-SVC-2CMXP7HKUVJN7L6M"


def test_endpoint_chain_name_matches_upstream_example():
    assert chains.endpoint_chain("ns1/svc1:p80", "tcp", "10.180.0.1:80") == "KUBE-SEP-SXIVWICOYRO3J4NJ"


def test_policy_chains_share_the_hash_and_fit_iptables_limit():
    svc = chains.cluster_policy_chain("ns2/svc2:p80", "tcp")
    assert svc == "KUBE-SVC-GNZBNJ2PO5MGZ6GT"
    assert chains.external_chain("ns2/svc2:p80", "tcp") == "KUBE-EXT-GNZBNJ2PO5MGZ6GT"
    assert chains.local_policy_chain("ns2/svc2:p80", "tcp") == "KUBE-SVL-GNZBNJ2PO5MGZ6GT"
    assert len(chains.endpoint_chain("a" * 63 + "/" + "b" * 63, "sctp", "10.0.0.1:65535")) <= 28


def test_protocol_changes_the_hash():
    assert chains.cluster_policy_chain("ns/s:dns", "tcp") != chains.cluster_policy_chain("ns/s:dns", "udp")


def test_only_service_chains_are_service_chains():
    assert chains.is_service_chain("KUBE-SEP-SXIVWICOYRO3J4NJ")
    assert chains.is_service_chain("KUBE-EXT-GNZBNJ2PO5MGZ6GT")
    assert not chains.is_service_chain("KUBE-SERVICES")
    assert not chains.is_service_chain("DOCKER")
