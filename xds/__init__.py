"""A standalone xDS control plane for Istio ambient mode.

The package name ``xds`` is shared with the ``xds-protos`` distribution, which
ships the CNCF ``xds.core``/``xds.type``/``xds.annotations`` modules that the
Envoy API types import. Extending ``__path__`` lets both halves resolve, no
matter which copy of ``xds/__init__.py`` Python finds first. Nothing else is defined here:
``xds-protos`` installs this same file (empty), so a reinstall of it must break nothing
(the version is in ``xds.version``).
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
