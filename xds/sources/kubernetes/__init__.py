"""Kubernetes as a config source, and the cluster-side pieces of the security plumbing.

- ``api``: a JSON client on kubernetes-asyncio's transport (kubeconfig or in-cluster);
- ``kinds``: discovery of where each modelled kind is served;
- ``reflector``: list-then-watch of one resource into the mesh store;
- ``source``: one reflector per kind, readiness, CRDs installed later;
- ``tokenreview``: bearer tokens checked by the API server (TokenReview);
- ``ca_secret``: the CA's key material from the cluster (``cacerts`` / ``istio-ca-secret``);
- ``root_cert``: the ``istio-ca-root-cert`` ConfigMap in every namespace.
"""
