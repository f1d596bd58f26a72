"""Package discovery (the rest of the metadata is in pyproject.toml).

Every package under registry/ is found, so a new layer can never be left out of an install;
the built-in plugins (plugins/) and the migrations (migrations/) install under names of their own,
as pyproject's package-dir maps them.
"""

from setuptools import find_packages, setup


def renamed(folder: str, name: str) -> list[str]:
    return [name, *(f"{name}.{p}" for p in find_packages(folder))]


setup(
    packages=[
        *find_packages(include=["registry", "registry.*"]),
        *renamed("plugins", "registry_plugins"),
        *renamed("migrations", "registry_migrations"),
    ]
)
