"""Pod Security admission (upstream's k8s.io/pod-security-admission): the Pod Security Standards
(`policy.py`), namespace labels and the server default (`labels.py`), the admission step (`admission.py`)."""
