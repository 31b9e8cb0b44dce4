"""The wiring: one control plane process assembled from the layers.

``app`` starts and stops the servers, sources and tasks; ``pipeline`` (with its
``debounce`` and ``metrics``) turns model changes into published resources;
``scopes`` decides what each authenticated proxy may read; ``secrets`` keeps
waypoints' SDS key pairs published and rotated; ``debug_views`` builds the
debug surfaces that need the model; ``render`` is ``xds render``; ``workers``
forks ``--workers N`` serving processes.
"""
