"""registry.toml: where the database and the store are, and the interference policy.

It holds no secrets, so a team can commit it: a password in a database URL is stored and
printed as `***`; `REGISTRY_DB` (or the driver's own mechanisms, e.g. PGPASSWORD or
~/.pgpass) supplies it. The `[governance]` table holds the four-eyes rule and the
protected aliases with their approvers.
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

    def judge(self, message: str, error: type[RegistryError]) -> str:
        """A finding over the limit: refused under `refuse`, else returned as the warning."""
        if self.action == "refuse":
            raise error(message + " (policy: refuse)")
        return message


HIDDEN = "***"


def redact(url: str) -> str:
    """The URL with any password replaced by `***` (what is stored, logged and printed)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{HIDDEN}@{hostport}{slash}{path}"


def _without_hidden(url: str) -> str:
    """Drop a `***` placeholder so the driver's own mechanisms (PGPASSWORD, .pgpass) apply."""
    return url.replace(f":{HIDDEN}@", "@", 1)


@dataclass
class Governance:
    four_eyes: bool = False  # approval must come from another actor than the creator
    protected_aliases: dict[str, list[str]] = field(default_factory=dict)  # alias -> approvers

    def __post_init__(self) -> None:
        for alias, who in self.protected_aliases.items():
            if not isinstance(who, list) or not all(isinstance(w, str) for w in who):
                raise RegistryError(f"governance.protected_aliases.{alias} must be a list of actor names")


@dataclass
class Config:
    home: Path
    db: str = "sqlite:///registry.db"
    store: str = "vectors.zarr"
    interference: InterferencePolicy = field(default_factory=InterferencePolicy)
    retention_corpus: str | None = None  # passages for the retention gate (default: shipped)
    governance: Governance = field(default_factory=Governance)
    secret_db: str | None = field(default=None, repr=False)  # the full URL given to init; never saved

    def __post_init__(self) -> None:
        if redact(self.db) != self.db:
            self.secret_db, self.db = self.db, redact(self.db)

    @property
    def db_url(self) -> str:
        url = _without_hidden(os.environ.get("REGISTRY_DB") or self.secret_db or self.db)
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
        gov = data.get("governance", {})
        return cls(
            home=home,
            db=data.get("db", cls.db),
            store=data.get("store", cls.store),
            retention_corpus=data.get("retention_corpus"),
            interference=InterferencePolicy(
                action=pol.get("policy", "warn"), threshold=float(pol.get("threshold", 0.9))
            ),
            governance=Governance(
                four_eyes=bool(gov.get("four_eyes", False)),
                protected_aliases=dict(gov.get("protected_aliases", {})),
            ),
        )

    def save(self) -> None:
        text = (
            "# Preference-vector registry. No secrets here: credentials come from the environment.\n"
            f"db = {_q(self.db)}\nstore = {_q(self.store)}\n"
            + (f"retention_corpus = {_q(self.retention_corpus)}\n" if self.retention_corpus else "")
            + "\n[interference]\n"
            f"policy = {_q(self.interference.action)}\nthreshold = {self.interference.threshold}\n\n"
            "[governance]\n# four_eyes: approval must come from another actor than the creator\n"
            f"four_eyes = {str(self.governance.four_eyes).lower()}\n"
            '# protected aliases: only the listed approvers may move them, e.g. prod = ["alice"]\n'
            "[governance.protected_aliases]\n"
            + "".join(
                f"{_q(a)} = [{', '.join(_q(w) for w in who)}]\n"
                for a, who in sorted(self.governance.protected_aliases.items())
            )
        )
        if redact(self.db) != self.db:  # why: the file is meant to be committed
            raise RegistryError("refusing to write a database password to registry.toml")
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
