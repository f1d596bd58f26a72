"""Preference-vector registry: pinned bases, lossless vectors, versioned recipes.

`from registry import Registry` is the public entry point; heavy modules load lazily so
that importing the package (and `registry --help`) stays fast.
"""

from typing import TYPE_CHECKING

from registry.version import VERSION as __version__

if TYPE_CHECKING:
    from registry.api import Registry

__all__ = ["Registry", "__version__"]


def __getattr__(name: str):
    if name == "Registry":
        from registry.api import Registry

        return Registry
    raise AttributeError(name)
