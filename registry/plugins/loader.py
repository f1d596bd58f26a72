"""Finding preference plugins through the `registry.plugins` entry-point group.

Built-ins are registered by this package's own metadata, exactly like a third-party plugin.
`REGISTRY_PLUGINS=name1,name2` restricts which ones load (useful to isolate a broken one).
"""

from __future__ import annotations

import os
from functools import cache

from registry.errors import PluginError
from registry.plugins.spec import Plugin

GROUP = "registry.plugins"


@cache
def _entry_points():
    from importlib.metadata import entry_points

    wanted = {n.strip() for n in os.environ.get("REGISTRY_PLUGINS", "").split(",") if n.strip()}
    return {ep.name: ep for ep in entry_points(group=GROUP) if not wanted or ep.name in wanted}


def names() -> list[str]:
    return sorted(_entry_points())


def load(name: str) -> Plugin:
    eps = _entry_points()
    if name not in eps:
        raise PluginError(f"unknown plugin {name!r} (installed: {', '.join(sorted(eps)) or 'none'})")
    ep = eps[name]
    try:
        obj = ep.load()
    except Exception as e:
        raise PluginError(f"plugin {name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from e
    if callable(obj) and not isinstance(obj, Plugin):
        try:
            obj = obj()
        except Exception as e:
            raise PluginError(f"plugin {name!r} ({ep.value}) failed to start: {type(e).__name__}: {e}") from e
    if not isinstance(obj, Plugin):
        raise PluginError(f"plugin {name!r} ({ep.value}) is a {type(obj).__name__}, not a registry Plugin")
    return obj


def discover() -> dict[str, Plugin]:
    return {n: load(n) for n in names()}


def describe() -> list[dict[str, str]]:
    """name, version and description of every installed plugin (loading each)."""
    return [{"name": p.name, "version": p.version, "description": p.description} for p in discover().values()]
