"""thresher's version, from the installed distribution (a leaf module: no imports of ours)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("thresher")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0+unknown"
