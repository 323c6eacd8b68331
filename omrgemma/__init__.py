"""omrgemma: optical music recognition with PaliGemma 2."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("omrgemma")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
