"""Config sources: where mesh objects come from.

base    the Source protocol every source implements
files   FileSource (a manifest directory, reloaded on change), load_directory
demo    the bundled demo mesh, used when no config is given
"""

from xds.sources.base import OnChange, Source

__all__ = ["OnChange", "Source"]
