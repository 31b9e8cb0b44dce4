"""Translation: pure functions from the mesh model to xDS resources.

No sockets, no event loop, no clocks: given the model (and which objects
changed), a translator returns ``xds.resources.Update``s. Everything here is
testable with plain function calls.
"""
