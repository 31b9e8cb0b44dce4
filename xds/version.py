"""This project's version, from the installed package's metadata.

Not defined in ``xds/__init__.py``: the ``xds-protos`` distribution installs that same file
(empty), so after ``pip install --force-reinstall xds-protos`` anything defined there would be
gone. Nothing may depend on ``xds/__init__.py`` beyond ``extend_path``.
"""

from importlib import metadata

try:
    __version__ = metadata.version("xds-ambient")
except metadata.PackageNotFoundError:  # a checkout that was never installed
    __version__ = "0+unknown"
