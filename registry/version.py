"""The installed package's version, read from its metadata: pyproject.toml is the one source."""

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("preference-registry")
except PackageNotFoundError:  # running from a source tree that was never installed
    VERSION = "0+unknown"
