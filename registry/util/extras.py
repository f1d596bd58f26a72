"""Optional dependency groups: the core installs without them; a command needing one names it.

`pip install preference-registry` is the core (init, import, recipes, materialize, verify,
governance, bundles). Training, evaluation and the retention gate need `[train]`, plots `[plots]`.
"""

from __future__ import annotations

import importlib.util

from registry.errors import MissingExtra

PACKAGE = "preference-registry"
# extra -> the modules it provides (pyproject.toml's [project.optional-dependencies] installs them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "transformers", "trl", "accelerate", "peft"),
    "plots": ("matplotlib",),
}
LABELS = {"train": "training", "plots": "plots"}


def installed(module: str) -> bool:
    """Whether `module` can be imported, without importing it (a blocked import counts as absent)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(extra: str, *modules: str, what: str) -> None:
    """Refuse `what` in one line naming the extra when any of `modules` is not installed."""
    missing = [m for m in modules or EXTRAS[extra] if not installed(m)]
    if missing:
        raise MissingExtra(
            f"{what} needs the {LABELS.get(extra, extra)} extra: pip install '{PACKAGE}[{extra}]' "
            f"({', '.join(missing)} not installed)"
        )
