"""What istiod's gateway deployment controller does for ``istio-waypoint`` Gateways:
the objects that run a waypoint (``objects``), the Gateway status (``status``),
and the controller that keeps both in step with the cluster (``controller``)."""
