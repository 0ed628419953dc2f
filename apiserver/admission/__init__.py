"""Admission plugins API.create/update run on typed bodies: ResourceQuota (`quota.py`),
DefaultTolerationSeconds (`default_tolerations.py`); PodSecurity, NodeRestriction and CSR approval
live with their subjects (`podsecurity/`, `auth/node_restriction.py`, `certificates/admission.py`).
They see the API through `interface.AdmissionAPI`, so none of them imports `apiserver.api`."""
