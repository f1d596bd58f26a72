"""registry.toml: where the database and the store are; URL redaction.

It holds no secrets, so a team can commit it: a password in a database URL (as
`user:PASS@` or `?password=`) is stored and printed as `***`; `REGISTRY_DB` (or the
driver's own mechanisms, e.g. PGPASSWORD or ~/.pgpass) supplies it. Team policy
(four-eyes, protected aliases, interference) lives in the database (registry.db.policy);
unknown keys here are refused, so a typo cannot switch a rule off.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
_SECRET_PARAMS = {"password", "passwd", "pwd", "sslpassword"}  # libpq and driver spellings
_MARK = "R3DACTED0SECRET"  # stands in for a hidden query value while the URL is rendered


def _parse(url: Any):
    from sqlalchemy.engine import URL, make_url

    if isinstance(url, URL):
        return url
    try:
        return make_url(str(url))
    except Exception:
        return None


def _secret_params(u) -> list[str]:
    return [k for k in u.query if k.lower() in _SECRET_PARAMS]


def redact(url: Any) -> str:
    """The URL with every password shown as `***`: in `user:PASS@`, and `?password=`.

    Parsed the way SQLAlchemy parses it to connect (a password may hold `/`, `@` or `?`),
    so what is hidden is exactly what the driver would send.
    """
    u = _parse(url)
    if u is None:  # unparseable: show nothing that might be a secret
        text = str(url)
        if "@" in text or "password" in text.lower():
            return f"{text.partition('://')[0]}://{HIDDEN} (unparseable URL)"
        return text
    hidden = u.set(query={k: (_MARK if k in _secret_params(u) else v) for k, v in u.query.items()})
    return hidden.render_as_string(hide_password=True).replace(_MARK, HIDDEN)


def _plain(url: Any) -> bool:
    """No user part, no query, no "password": nothing to hide, known without SQLAlchemy's parser
    (whose import alone costs more than a listing may take)."""
    text = str(url)
    return "@" not in text and "?" not in text and "password" not in text.lower()


def has_secret(url: Any) -> bool:
    """Whether a URL carries a password (a `***` placeholder is none)."""
    if _plain(url):
        return False
    u = _parse(url)
    if u is None:
        return "@" in str(url) or "password" in str(url).lower()
    return u.password not in (None, HIDDEN) or any(u.query[k] != HIDDEN for k in _secret_params(u))


def without_password(url: str) -> str:
    """Drop passwords and `***` placeholders, so PGPASSWORD / ~/.pgpass supply them."""
    if _plain(url):
        return url
    from sqlalchemy.engine import URL

    u = _parse(url)
    if u is None or (u.password is None and not _secret_params(u)):
        return url
    query = {k: v for k, v in u.query.items() if k not in _secret_params(u)}
    bare = URL.create(u.drivername, u.username, None, u.host, u.port, u.database, query)
    return bare.render_as_string(hide_password=False)


def scrub(message: str, url: Any) -> str:
    """`message` with any password of `url` replaced (driver errors may quote their input)."""
    u = _parse(url)
    if u is None:
        return message
    for secret in [u.password, *(u.query[k] for k in _secret_params(u))]:
        for s in secret if isinstance(secret, tuple) else (secret,):
            if s and s != HIDDEN:
                message = message.replace(str(s), HIDDEN)
    return message


def normalized_store(store_url: str) -> str:
    """One spelling per store: local paths resolved, URLs without a trailing slash."""
    if "://" in store_url:
        return store_url.rstrip("/")
    return str(Path(store_url).resolve())


def same_store(a: str, b: str) -> bool:
    return normalized_store(a) == normalized_store(b)


# registry.toml's keys; [interference] and [governance] only as written before migration
# 0004 (moved into the database on first open, refused afterwards); anything else refused
_KNOWN: dict[str, dict[str, str] | None] = {
    "db": None,
    "store": None,
    "retention_corpus": None,
    "interference": {"policy": "interference_policy", "threshold": "interference_threshold"},
    "governance": {"four_eyes": "four_eyes", "protected_aliases": "protected_aliases"},
}


def _legacy_policy(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Refuse unknown keys (a typo switched a rule off silently); return old policy settings."""
    legacy: dict[str, Any] = {}
    for key, value in data.items():
        sub = _KNOWN.get(key, {})
        if key not in _KNOWN:
            raise RegistryError(f"{path}: unknown key {key!r} (known: {', '.join(_KNOWN)})")
        if sub is None:
            if not isinstance(value, str):
                raise RegistryError(f"{path}: {key} must be a string, not {value!r}")
            continue
        if not isinstance(value, dict):
            raise RegistryError(f"{path}: [{key}] must be a table")
        for k, v in value.items():
            if k not in sub:
                raise RegistryError(f"{path}: unknown key {key}.{k} (known: {', '.join(sub)})")
            legacy[sub[k]] = v
    return legacy


@dataclass
class Config:
    home: Path
    db: str = "sqlite:///registry.db"
    store: str = "vectors.zarr"
    # the team's interference policy: read from the database's team policy when opened
    interference: InterferencePolicy = field(default_factory=InterferencePolicy)
    retention_corpus: str | None = None  # passages for the retention gate (default: shipped)
    # [interference]/[governance] settings of a registry.toml written before migration 0004
    legacy_policy: dict[str, Any] = field(default_factory=dict)
    secret_db: str | None = field(default=None, repr=False)  # the full URL given to init; never saved

    def __post_init__(self) -> None:
        if has_secret(self.db):
            self.secret_db, self.db = self.db, redact(self.db)

    @property
    def db_url(self) -> str:
        url = os.environ.get("REGISTRY_DB") or self.secret_db or self.db
        if not has_secret(url):
            url = without_password(url)  # `***` placeholders out: the driver finds the password
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
        return cls(
            home=home,
            db=data.get("db", cls.db),
            store=data.get("store", cls.store),
            retention_corpus=data.get("retention_corpus"),
            legacy_policy=_legacy_policy(path, data),
        )

    def save(self) -> None:
        """Write registry.toml: locations only. Team policy lives in the database."""
        text = (
            "# Preference-vector registry. No secrets here: credentials come from the environment.\n"
            "# Team policy (four-eyes, protected aliases, interference) is in the database:\n"
            "# `registry policy show`, and `registry policy set KEY VALUE` for admins.\n"
            f"db = {_q(self.db)}\nstore = {_q(self.store)}\n"
            + (f"retention_corpus = {_q(self.retention_corpus)}\n" if self.retention_corpus else "")
        )
        if has_secret(self.db):  # why: the file is meant to be committed
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
