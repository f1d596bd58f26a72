"""Optional dependency groups: the core installs without them; a command needing one names it.

The package without extras is the core (init, import, recipes, materialize, verify,
governance, bundles). Training, evaluation and the retention gate need `[train]`, plots `[plots]`,
a PostgreSQL database `[postgres]`, an `s3://` store `[s3]`.
"""

from __future__ import annotations

import importlib.util

from registry.errors import MissingExtra

PACKAGE = "preference-registry"
# extra -> the modules it provides (pyproject.toml's [project.optional-dependencies] installs them)
EXTRAS: dict[str, tuple[str, ...]] = {
    "train": ("torch", "transformers", "trl", "accelerate", "peft"),
    "plots": ("matplotlib",),
    "postgres": ("psycopg",),
    "s3": ("s3fs",),
}
LABELS = {"train": "training", "plots": "plots", "postgres": "PostgreSQL", "s3": "S3"}


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


def require_backends(db_url: str, store_url: str) -> None:
    """A database or store whose driver is not installed: one line naming the extra, before
    anything is opened or written (SQLAlchemy and fsspec would fail deep inside a traceback)."""
    scheme = db_url.split("://", 1)[0]
    if scheme.startswith("postgresql"):
        driver = scheme.partition("+")[2] or "psycopg2"  # SQLAlchemy's default for postgresql://
        if driver == "psycopg":
            require("postgres", what="a PostgreSQL database (postgresql+psycopg://)")
        elif not installed(driver):
            raise MissingExtra(
                f"a PostgreSQL database ({scheme}://) needs the {driver} driver, which is not installed: "
                f"use postgresql+psycopg:// with pip install '{PACKAGE}[postgres]'"
            )
    protocol = store_url.split("://", 1)[0] if "://" in store_url else ""
    if protocol in {"s3", "s3a"}:
        require("s3", what=f"an {protocol}:// store")
