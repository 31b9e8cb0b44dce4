"""The bundled demo mesh: a bookinfo-like set of manifests served when no config is given.

The manifests are package data (``*.yaml`` next to this file), so they ship
with a regular install.
"""

from importlib.resources import files
from pathlib import Path


def demo_directory() -> Path:
    """The directory holding the demo manifests."""
    directory = files(__name__)
    # A regular (non-zip) install gives a real directory, which FileSource needs.
    if not isinstance(directory, Path):
        raise RuntimeError(f"the demo manifests are not on the file system: {directory}")
    return directory
