"""A standalone xDS control plane for Istio ambient mode.

The package name ``xds`` is shared with the ``xds-protos`` distribution, which
ships the CNCF ``xds.core``/``xds.type``/``xds.annotations`` modules that the
Envoy API types import. Extending ``__path__`` lets both halves resolve, no
matter which copy of ``xds/__init__.py`` Python finds first.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
