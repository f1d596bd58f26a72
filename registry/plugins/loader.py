"""The one loader of entry-point groups: preference plugins and evaluators.

Built-ins are registered by this package's own metadata, exactly like a third-party plugin.
`REGISTRY_PLUGINS=name1,name2` (or `REGISTRY_EVALUATORS=…`) restricts which ones load
(useful to isolate a broken one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from registry.errors import PluginError
from registry.plugins.spec import Evaluator, Plugin


@dataclass(frozen=True)
class Group:
    group: str  # the entry-point group
    kind: str  # what error messages call one
    env: str  # the variable that restricts which load
    cls: type

    def entry_points(self) -> dict[str, EntryPoint]:
        return _entry_points(self)

    def names(self) -> list[str]:
        return sorted(self.entry_points())

    def load(self, name: str) -> Any:
        eps = self.entry_points()
        if name not in eps:
            raise PluginError(f"unknown {self.kind} {name!r} (installed: {', '.join(sorted(eps)) or 'none'})")
        ep = eps[name]
        try:
            obj = ep.load()
        except Exception as e:
            raise PluginError(
                f"{self.kind} {name!r} ({ep.value}) failed to load: {type(e).__name__}: {e}"
            ) from e
        if callable(obj) and not isinstance(obj, self.cls):
            try:
                obj = obj()
            except Exception as e:
                raise PluginError(
                    f"{self.kind} {name!r} ({ep.value}) failed to start: {type(e).__name__}: {e}"
                ) from e
        if not isinstance(obj, self.cls):
            raise PluginError(
                f"{self.kind} {name!r} ({ep.value}) is a {type(obj).__name__}, not a registry {self.cls.__name__}"
            )
        return obj


@cache
def _entry_points(g: Group) -> dict[str, EntryPoint]:
    wanted = {n.strip() for n in os.environ.get(g.env, "").split(",") if n.strip()}
    return {ep.name: ep for ep in entry_points(group=g.group) if not wanted or ep.name in wanted}


PLUGINS = Group("registry.plugins", "plugin", "REGISTRY_PLUGINS", Plugin)
EVALUATORS = Group("registry.evaluators", "evaluator", "REGISTRY_EVALUATORS", Evaluator)


def names() -> list[str]:
    return PLUGINS.names()


def load(name: str) -> Plugin:
    return PLUGINS.load(name)


def discover() -> dict[str, Plugin]:
    return {n: load(n) for n in names()}


def describe() -> list[dict[str, str]]:
    """name, version and description of every installed plugin (loading each)."""
    return [{"name": p.name, "version": p.version, "description": p.description} for p in discover().values()]
