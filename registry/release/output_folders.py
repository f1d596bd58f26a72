"""Materialized folders on disk: written whole or not at all, re-verified by their digests.

Everything is written into a temporary sibling folder and renamed into place only when
complete, so an output is either absent or whole, whatever kills the process.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from pathlib import Path

from registry.db.models import Materialization, Recipe
from registry.errors import IntegrityError, OutputExists
from registry.records.bases import NOT_COPIED
from registry.storage.tensor_io import TAG_NAMES, write_sharded
from registry.util.digests import file_sha256, weights_digest
from registry.util.faults import crashpoint, pause

LOCK_NAME = "registry-lock.json"


def verify_files(folder: Path, files: dict[str, str]) -> list[str]:
    """Re-hash a folder against its recorded files; extra (at any depth), linked or missing
    files are problems too."""
    present, links = set(), set()
    if folder.is_dir():
        for root, dirs, names in os.walk(folder):
            for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                rel = Path(root, name).relative_to(folder).as_posix()
                (links if os.path.islink(os.path.join(root, name)) else present).add(rel)
    present.discard(LOCK_NAME)
    problems = []
    for name, digest in sorted(files.items()):
        if name in links:
            problems.append(f"{name}: a link, not a file")
        elif name not in present:
            problems.append(f"{name}: missing")
        elif file_sha256(folder / name) != digest:
            problems.append(f"{name}: sha256 mismatch")
    extra = (present | links) - set(files)
    return problems + [f"{name}: not recorded" for name in sorted(extra)]


def lock_text(lock: dict, files: dict[str, str]) -> str:
    """registry-lock.json: the lock's inputs, then every file's digest and their digest."""
    full = {**lock, "files": dict(sorted(files.items())), "output_digest": weights_digest(files)}
    return json.dumps(full, indent=2, sort_keys=True) + "\n"


def copy_recorded(src: Path, out: Path, files: dict[str, str], lock: str, force: bool, durable: bool) -> None:
    """Reuse: copy only the files `src`'s record lists, each re-hashed as it is copied, and
    a lock rebuilt from the registry (never the source's own lock, which nothing hashes).

    A file that changed since it was verified aborts the copy: nothing is written.
    """
    prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        for name, digest in sorted(files.items()):
            source = src / name
            if "/" in name or name in {"", ".", ".."} or source.is_symlink():
                raise IntegrityError(f"reused output {src}: {name!r} is not a plain file name")
            h = hashlib.sha256()
            with open(source, "rb") as fin, open(tmp / name, "wb") as fout:
                while block := fin.read(1 << 22):
                    h.update(block)
                    fout.write(block)
            if h.hexdigest() != digest:
                raise IntegrityError(f"reused output {src}: {name} changed since it was verified; not copied")
        (tmp / LOCK_NAME).write_text(lock)
        if durable:
            fsync_dir(tmp)
        _swap_into_place(tmp, out, durable, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_lock(out: Path, lock: str) -> None:
    """Put the registry's lock back into a reused folder (an edited one is not trusted)."""
    tmp = out / f".{LOCK_NAME}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(lock)
    os.replace(tmp, out / LOCK_NAME)


def check_replaceable(core, out: Path) -> None:
    """--force replaces only an earlier output of this registry: its lock names a recorded
    output, or a recipe version of this registry (an output whose record a crash lost)."""
    from sqlalchemy import select

    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        lock = json.loads((out / LOCK_NAME).read_text())
        recorded, rec = lock["output_digest"], lock["recipe"]
        name, version, digest = rec["name"], int(rec["version"]), rec["content_digest"]
    except (OSError, ValueError, KeyError, TypeError):
        raise OutputExists(
            f"{out} is not an earlier output of this registry (no valid {LOCK_NAME}); --force refuses to replace it"
        ) from None
    with core.Session() as s:
        known = s.scalar(select(Materialization.id).where(Materialization.output_digest == recorded).limit(1))
        ours = s.scalar(
            select(Recipe.id).where(
                Recipe.name == name, Recipe.version == version, Recipe.content_digest == digest
            )
        )
    if known is None and ours is None:
        raise OutputExists(f"{out} holds an output of another registry; --force refuses to replace it")


def check_free(core, out: Path) -> None:
    """Refuse a non-empty `out`; suggest --force only where --force would replace it."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    try:
        check_replaceable(core, out)
    except OutputExists:
        raise OutputExists(
            f"{out} exists and is not an output of this registry, which --force never replaces: "
            "choose another --out, or empty it yourself"
        ) from None
    raise OutputExists(f"{out} exists and is not empty (use --force to replace it)")


def prepare_out(out: Path, force: bool) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise OutputExists(f"{out} exists and is not empty (use --force to replace it)")


def write_folder(plan, out: Path, force: bool = False) -> dict[str, str]:
    """Write the whole folder; return sha256 of every file in it except the lock."""
    out = out.resolve()
    prepare_out(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = write_sharded(
            tmp, plan.out_specs(), plan.jobs, plan.shard_bytes, plan.on_bytes, plan.workers, plan.durable
        )
        for src in plan.copy_files:
            if src.name == "config.json":
                (tmp / src.name).write_text(config_with_dtype(src, TAG_NAMES[plan.out_tag]))
            else:
                shutil.copyfile(src, tmp / src.name)
        (tmp / "README.md").write_text(plan.card if isinstance(plan.card, str) else plan.card.result())
        for p in sorted(tmp.iterdir()):
            if p.name not in files:
                files[p.name] = file_sha256(p)
        (tmp / LOCK_NAME).write_text(lock_text(plan.lock, files))
        for check in plan.checks:
            check.result()  # e.g. the base's pins: a failure discards the whole folder
        crashpoint("materialize:before-rename")
        pause("materialize:before-rename")
        if plan.durable:
            fsync_dir(tmp)
        _swap_into_place(tmp, out, plan.durable, force)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return files


def _swap_into_place(tmp: Path, out: Path, durable: bool, force: bool = False) -> None:
    """The rename is the commit: atomic against a killed process. Only `durable` fsyncs the
    parent as well (power-loss safety): on ext4 that fsync's journal commit waits for every
    output whose writeback has begun (benchmarks/write_paths.py: 1.763 s idle after two
    2 GiB outputs, in 2026-11-24-write-paths.json)."""
    prepare_out(out, force)  # re-checked at the rename: a folder that appeared meanwhile is kept
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
    os.rename(tmp, out)
    if durable:
        fsync_dir(out.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename into it) durable; benchmarks/write_paths.py times it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def files_to_copy(base_folder: Path, pinned: list[str]) -> list[Path]:
    return [base_folder / f for f in sorted(pinned) if f not in NOT_COPIED and not f.endswith(".safetensors")]


def config_with_dtype(path: Path, dtype: str) -> str:
    """The base's config.json with its dtype set to the output's, so loaders pick it up."""
    config = json.loads(path.read_text())
    keys = [k for k in ("dtype", "torch_dtype") if k in config] or ["torch_dtype"]
    for k in keys:
        config[k] = dtype
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def output_event(r: Recipe, m: Materialization, form: str) -> dict:
    """An `output.materialized` webhook payload: which recipe, where (on which host), what digest."""
    return {
        "recipe": r.ref, "status": r.status, "form": form, "host": platform.node(),
        "out": m.out_path, "output_digest": m.output_digest, "reused_from": m.reused_from_id is not None,
    }  # fmt: skip
