"""registry.toml: where the database and the store are, and the interference policy.

It holds no secrets, so a team can commit it; `REGISTRY_DB` overrides the database URL.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from registry.errors import NotInitialized, RegistryError

CONFIG_NAME = "registry.toml"


@dataclass
class InterferencePolicy:
    action: str = "warn"  # warn | refuse | off
    threshold: float = 0.9

    def __post_init__(self) -> None:
        if self.action not in {"warn", "refuse", "off"}:
            raise RegistryError(f"interference policy must be warn, refuse or off, not {self.action!r}")
        if not 0.0 <= self.threshold <= 1.0:
            raise RegistryError(f"interference threshold must be in [0, 1], not {self.threshold}")


@dataclass
class Config:
    home: Path
    db: str = "sqlite:///registry.db"
    store: str = "vectors.zarr"
    interference: InterferencePolicy = field(default_factory=InterferencePolicy)

    @property
    def db_url(self) -> str:
        url = os.environ.get("REGISTRY_DB") or self.db
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            url = prefix + str((self.home / url[len(prefix) :]).resolve())
        return url

    @property
    def store_url(self) -> str:
        if "://" in self.store:
            return self.store
        return str((self.home / self.store).resolve())

    @classmethod
    def load(cls, home: Path) -> Config:
        path = home / CONFIG_NAME
        if not path.is_file():
            raise NotInitialized(f"no registry at {home} (run `registry init` first)")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as e:
            raise RegistryError(f"{path}: invalid TOML ({e})") from e
        pol = data.get("interference", {})
        return cls(
            home=home,
            db=data.get("db", cls.db),
            store=data.get("store", cls.store),
            interference=InterferencePolicy(
                action=pol.get("policy", "warn"), threshold=float(pol.get("threshold", 0.9))
            ),
        )

    def save(self) -> None:
        text = (
            "# Preference-vector registry. No secrets here: credentials come from the environment.\n"
            f"db = {_q(self.db)}\nstore = {_q(self.store)}\n\n[interference]\n"
            f"policy = {_q(self.interference.action)}\nthreshold = {self.interference.threshold}\n"
        )
        (self.home / CONFIG_NAME).write_text(text)


def find_home(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: the current one) holding registry.toml.

    Found the way git finds `.git`, so commands work from any sub-folder of a registry.
    """
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise NotInitialized(
        f"no registry: looked for {CONFIG_NAME} in {start} and every folder above it; "
        "run `registry init`, or pass --home DIR (or set REGISTRY_HOME)"
    )


def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
