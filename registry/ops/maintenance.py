"""Maintenance: re-verify everything the registry recorded, and collect what nothing references."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from registry.db.health import database_problems
from registry.db.models import BaseModel, Materialization, Vector
from registry.errors import IntegrityError
from registry.ops.collect import collect_archived
from registry.records.bases import check_pins, list_bases, pins_of
from registry.records.runs import finish_run, interrupted_runs
from registry.release.destination import lock_path
from registry.storage.tensor_io import row_blocks
from registry.util.digests import ArrayHasher
from registry.util.finite import all_finite

if TYPE_CHECKING:
    from registry.core import Core
    from registry.storage.vector_store import StoredVector


def verify(core: Core, on_item: Callable[[str], None] | None = None) -> list[str]:
    """Check the database, re-hash every pinned base file and every stored array; returns the problems.

    Bases and arrays are hashed on one thread per core (decoding and sha256 release the GIL);
    problems and progress still come in the order of the database's rows."""
    problems = database_problems(core.config.db_url, core.engine)
    if on_item:
        on_item("database")
    if problems:
        return problems  # the rows themselves are in doubt: fix the database first
    with core.Session() as s:
        vecs = list(
            s.scalars(
                select(Vector)
                .options(selectinload(Vector.tensors), selectinload(Vector.base))
                .where(Vector.collected_at.is_(None))  # gc removed their data on purpose
            )
        )
    with ThreadPoolExecutor(max_workers=core.store.workers, thread_name_prefix="verify") as pool:
        checks = [(f"base {b.name}", [pool.submit(_base_problems, b)]) for b in list_bases(core)]
        for v in vecs:
            label = f"vector {v.ref} (base {v.base.name})"
            try:
                data = core.store.open(v.store_key)
            except IntegrityError as e:
                checks.append((label, [pool.submit(lambda e=e, label=label: [f"{label}: {e}"])]))
                continue
            checks.append(
                (
                    label,
                    [pool.submit(_array_problems, label, data, t.name, t.sha256) for t in v.tensors]
                    + [
                        pool.submit(_factor_problems, label, data, t.name, t.factors)
                        for t in v.tensors
                        if t.factors
                    ],
                )
            )
        for label, futures in checks:
            for f in futures:
                problems += f.result()
            if on_item:
                on_item(label)
    return problems


def _base_problems(b: BaseModel) -> list[str]:
    try:
        check_pins(Path(b.path), pins_of(b), b.name)
    except IntegrityError as e:
        return [f"base {b.name}: {p}" for p in e.problems]
    return []


def _array_problems(label: str, data: StoredVector, name: str, recorded: str) -> list[str]:
    try:
        h, finite = ArrayHasher(), True
        for a, b in row_blocks(data.spec(name).shape, data.chunk_rows(name)):
            rows = data.read_rows(name, a, b)
            h.update(rows)
            finite = finite and all_finite(rows)
        digest = h.hexdigest()
    except IntegrityError as e:
        return [f"{label}: array {name}: cannot be read ({str(e).split('(')[-1].rstrip(')')})"]
    if digest != recorded:
        return [f"{label}: array {name}: sha256 mismatch"]
    return [] if finite else [f"{label}: array {name}: holds NaN or infinite values"]


def _factor_problems(label: str, data: StoredVector, name: str, factors: dict) -> list[str]:
    """A low-rank tensor's factor arrays against their own recorded digests (beside the
    expanded tensor's check): a damaged factor is named even where its product hides it."""
    try:
        found = data.factor_sha256(name) if data.is_low_rank(name) else {}
    except IntegrityError as e:
        return [f"{label}: array {name}: factors cannot be read ({str(e).split('(')[-1].rstrip(')')})"]
    recorded = factors.get("sha256") or {}
    return [
        f"{label}: array {name}.{k}: sha256 mismatch" for k in sorted(recorded) if found.get(k) != recorded[k]
    ]


def orphans(core: Core) -> list[str]:
    """Store groups no vector row needs (a collected vector's group, should a crash have left it)."""
    with core.Session() as s:
        used = set(s.scalars(select(Vector.store_key).where(Vector.collected_at.is_(None))))
    return [k for k in core.store.group_keys() if k not in used]


# a materialize writes OUT as `.OUT.tmp-XXXXXXXX` beside it, then renames it (release.output_folders)
_OUTPUT_TMP = re.compile(r"\.(?P<out>.+)\.tmp-[0-9a-f]{8}")


def _being_written(out: Path) -> bool:
    """True while a materialize holds `out` (release.destination.claim's flock), or when that
    cannot be told (then the folder is kept)."""
    try:
        fd = os.open(
            lock_path(out), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        )
    except FileNotFoundError:
        return False  # a writer holds its lock file from its first check to its recorded row
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def output_leftovers(core: Core, grace_seconds: float, now: float) -> list[Path]:
    """`.OUT.tmp-*` folders that a killed materialize left beside the outputs this registry
    recorded (the folders where its outputs go), older than the grace period and not being
    written (no materialize holds OUT's lock)."""
    with core.Session() as s:
        parents = {Path(p).parent for p in s.scalars(select(Materialization.out_path).distinct())}
    found = []
    for parent in sorted(parents):
        try:
            entries = list(os.scandir(parent))
        except OSError:  # moved, unmounted or not ours to read: nothing to collect there
            continue
        for entry in entries:
            m = _OUTPUT_TMP.fullmatch(entry.name)
            try:
                if not m or not entry.is_dir(follow_symlinks=False):
                    continue
                if now - entry.stat(follow_symlinks=False).st_mtime < grace_seconds:
                    continue
            except OSError:
                continue
            if not _being_written(parent / m["out"]):
                found.append(Path(entry.path))
    return found


def _tree_bytes(p: Path) -> int:
    return sum(f.lstat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())


def gc(
    core: Core, grace_seconds: float = 3600.0, dry_run: bool = False, force: bool = False
) -> dict[str, Any]:
    """Remove store groups and scratch folders no committed row references, the
    `.OUT.tmp-*` folders killed materializations left beside their outputs, and the store data
    of archived vectors nothing live needs (ops.collect; `force`: protected ones too, admin only).

    A grace period protects writes in progress: their data exists before their row does
    (and a materialize's folder is also protected by its lock for as long as it runs).
    """
    now = time.time()
    archived = collect_archived(core, dry_run, force)
    removed, freed = [], archived["freed_bytes"]
    for key in orphans(core):
        if now - core.store.mtime(key) < grace_seconds:
            continue
        freed += core.store.nbytes(key)
        removed.append(key)
        if not dry_run:
            core.store.delete(key)
    scratch = core.home / ".scratch"
    stale = (
        [p for p in scratch.iterdir() if now - p.stat().st_mtime >= grace_seconds] if scratch.is_dir() else []
    )
    for p in stale:
        freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
        if not dry_run:
            shutil.rmtree(p, ignore_errors=True)
    leftovers = output_leftovers(core, grace_seconds, now)
    for p in leftovers:
        freed += _tree_bytes(p)
        if not dry_run:
            shutil.rmtree(p, ignore_errors=True)  # rmtree never follows a link out of the folder
    interrupted = interrupted_runs(core)
    if not dry_run:
        for run in interrupted:
            proc = run.sources.get("process", {})
            finish_run(
                core,
                run,
                "failed",
                error=f"interrupted: process {proc.get('pid')} on {proc.get('host')} ended",
            )
    report = {
        "removed": removed,
        "scratch": [p.name for p in stale],
        "outputs": [str(p) for p in leftovers],
        "archived": archived["archived"],
        "kept": archived["kept"],
        "freed_bytes": freed,
        "interrupted_runs": [r.id for r in interrupted],
        "dry_run": dry_run,
    }
    if not dry_run and (removed or stale or leftovers or interrupted or archived["archived"]):
        core.audit_now("gc", str(core.store.url), report)
    return report
