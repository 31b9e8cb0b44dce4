"""Serving: xDS streams, the CA endpoint and HTTP. Knows resources as bytes.

Nothing in here knows what a Workload or a Listener is: translation hands over
``Resource`` objects (already serialized), and serving moves their bytes.
"""
