"""`base locate` and `base remove`: moving a base between hosts, retiring an unused one."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from registry.db.as_json import base_view
from registry.db.models import BaseFile, BaseLocation, BaseModel, Recipe, TrainingRun, Vector
from registry.errors import NotFound, RegistryError
from registry.records.bases import check_pins, get_base, lookup_base, pins_of
from registry.records.hosts import locations
from registry.util.host_id import host_id

if TYPE_CHECKING:
    from registry.core import Core


class BaseInUse(RegistryError):
    """A base that vectors or recipes still use cannot be removed."""


def locate_base(core: Core, name: str, path: str | Path) -> dict[str, Any]:
    """Check every pin at `path`, then record it as this host's folder for `name` (another
    host's row is never touched). The files are hashed in full: a copy is trusted only once."""
    b = get_base(core, name)
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise NotFound("folder", str(path), f"nothing to locate base {name} at")
    folder = folder.resolve()
    check_pins(folder, pins_of(b), name)
    cache = core.stat_cache()
    for f in b.files:  # just hashed: the next use of the base need not hash them again
        cache.remember(folder / f.filename, f.sha256)
    host = host_id(core.home)

    def write() -> dict[str, Any]:
        with core.Session.begin() as s:
            base = lookup_base(s, name)
            row = s.scalar(
                select(BaseLocation).where(BaseLocation.base_id == base.id, BaseLocation.host == host)
            )
            before = row.path if row is not None else None
            if row is None:
                s.add(BaseLocation(base_id=base.id, host=host, path=str(folder), located_by=core.actor))
            else:
                row.path, row.located_by = str(folder), core.actor
            core.audit(s, "base.locate", name, {"host": host, "path": str(folder), "previous": before})
            return {"base": name, "host": host, "path": str(folder), "previous": before}

    return core.write(write)


def remove_base(core: Core, name: str) -> dict[str, Any]:
    """Delete a base's row, pins and locations; refused while vectors or recipes use it.

    Training runs on it that produced no vector (failed or abandoned) go with it; the audit
    event keeps the whole row (source, commit, pins), so the removal can be retraced.
    """

    def write() -> dict[str, Any]:
        with core.Session.begin() as s:
            b = lookup_base(s, name)
            vectors = [f"{n}@v{v}" for n, v in s.execute(
                select(Vector.name, Vector.version).where(Vector.base_id == b.id).order_by(Vector.name, Vector.version)
            )]  # fmt: skip
            recipes = [f"{n}@v{v}" for n, v in s.execute(
                select(Recipe.name, Recipe.version).where(Recipe.base_id == b.id).order_by(Recipe.name, Recipe.version)
            )]  # fmt: skip
            running = [str(i) for i in s.scalars(
                select(TrainingRun.id).where(TrainingRun.base_id == b.id, TrainingRun.status == "running")
            )]  # fmt: skip
            if vectors or recipes or running:
                users = [f"vectors {', '.join(_few(vectors))}"] if vectors else []
                users += [f"recipes {', '.join(_few(recipes))}"] if recipes else []
                users += [f"running training runs {', '.join(_few(running))}"] if running else []
                raise BaseInUse(f"base {name} is in use by {'; '.join(users)}: remove those first")
            record = {**base_view(b, files=True), "revision_sha": b.revision_sha}
            runs = list(s.scalars(select(TrainingRun.id).where(TrainingRun.base_id == b.id)))
            s.execute(delete(TrainingRun).where(TrainingRun.base_id == b.id))
            s.execute(delete(BaseLocation).where(BaseLocation.base_id == b.id))
            s.execute(delete(BaseFile).where(BaseFile.base_id == b.id))
            s.execute(delete(BaseModel).where(BaseModel.id == b.id))
            core.audit(s, "base.remove", name, {"base": record, "runs_removed": runs})
            return {"base": name, "runs_removed": runs}

    return core.write(write)


def _few(refs: list[str], n: int = 5) -> list[str]:
    return refs[:n] + ([f"… ({len(refs) - n} more)"] if len(refs) > n else [])


def base_locations(core: Core, name: str) -> dict[str, str]:
    """host -> folder, for every host that located the base."""
    with core.Session() as s:
        return locations(s, lookup_base(s, name).id)
