"""Base models: registered by name, pinned by the sha256 of every file, re-checked before use."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from registry.db.models import BaseFile, BaseModel
from registry.errors import AlreadyExists, IncompatibleWeights, IntegrityError, NotFound
from registry.records.hosts import location
from registry.records.hub import cached_snapshot, download, looks_like_path
from registry.storage.file_cache import StatCache
from registry.storage.tensor_io import (
    FLOATS,
    TAG_NAMES,
    SafetensorsFolder,
    TensorReader,
    pickle_files,
    row_blocks,
    to_f32,
)
from registry.storage.vector_store import sum_squares
from registry.util.digests import file_sha256, named_digest
from registry.util.host_id import host_id
from registry.util.refs import check_name

if TYPE_CHECKING:
    from registry.core import Core

# copied into every materialized folder; weights and the index are written anew
NOT_COPIED = {"README.md", "model.safetensors.index.json", ".gitattributes"}
# files a loader could pick up as weights: one appearing after registration fails the pins
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".h5", ".msgpack"}


@dataclass
class FolderInfo:
    architecture: str
    model_type: str | None
    dtype: str
    param_count: int
    files: dict[str, tuple[str, int]]  # filename -> (sha256, size)


def pinned_files(folder: Path) -> list[Path]:
    """Every file but hidden ones and ignored pickles (never read, so never pinned or copied)."""
    skip = set(pickle_files(folder))
    return sorted(
        p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".") and p.name not in skip
    )


def read_config(folder: Path) -> dict:
    path = folder / "config.json"
    if not path.is_file():
        raise IncompatibleWeights(f"{folder}: no config.json (not a Hugging Face model folder)")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise IncompatibleWeights(f"{path}: invalid JSON ({e})") from e


def architecture_of(config: dict) -> str:
    archs = config.get("architectures") or [config.get("model_type") or "unknown"]
    return str(archs[0])


def inspect_folder(folder: Path) -> FolderInfo:
    config = read_config(folder)
    weights = SafetensorsFolder(folder)
    tags = [weights.spec(n).tag for n in weights.names()]
    float_tags = [t for t in tags if t in FLOATS]
    if not float_tags:
        raise IncompatibleWeights(f"{folder}: no floating-point tensors")
    dominant = max(set(float_tags), key=float_tags.count)
    files = {p.name: (file_sha256(p), p.stat().st_size) for p in pinned_files(folder)}
    return FolderInfo(
        architecture=architecture_of(config),
        model_type=config.get("model_type"),
        dtype=TAG_NAMES[dominant],
        param_count=sum(weights.spec(n).numel for n in weights.names()),
        files=files,
    )


def check_pins(folder: Path, pins: dict[str, str], name: str, cache: StatCache | None = None) -> None:
    """Re-hash every pinned file; refuse a base whose bytes changed or went missing.

    With a cache, a file whose stat fingerprint is unchanged since its last full hash is
    not hashed again (git's index does the same); `registry verify` never uses the cache.
    """
    if not folder.is_dir():
        raise IntegrityError(
            f"base {name}: no folder {folder} on this host; if its files are elsewhere, run "
            f"`registry base locate {name} PATH`",
            [f"no folder {folder} on this host (registry base locate {name} PATH)"],
        )
    # a weight file added after registration would be loaded; pickles never are (ignored)
    ignored = set(pickle_files(folder)) if folder.is_dir() else set()
    problems = [
        f"{p.name} is an unpinned weight file (added after registration)"
        for p in (sorted(folder.iterdir()) if folder.is_dir() else [])
        if p.suffix in WEIGHT_SUFFIXES and p.name not in pins and p.name not in ignored
    ]  # fmt: skip
    for fname, digest in sorted(pins.items()):
        path = folder / fname
        if not path.is_file():
            problems.append(f"{fname} missing")
        elif (cache.sha256(path) if cache is not None else file_sha256(path)) != digest:
            problems.append(f"{fname} sha256 mismatch")
    if problems:
        moved = any(p.endswith(" missing") for p in problems)
        hint = f" (moved? `registry base locate {name} PATH`)" if moved else ""
        raise IntegrityError(
            f"base {name} at {folder} no longer matches its pins: {'; '.join(problems)}{hint}", problems
        )


def check_compatible(
    base: SafetensorsFolder, other: SafetensorsFolder, other_arch: str, base_arch: str
) -> None:
    """A vector only makes sense for weights laid out exactly like the base."""
    if other_arch != base_arch:
        raise IncompatibleWeights(
            f"{other.folder}: architecture {other_arch} differs from the base's {base_arch}"
        )
    a, b = set(base.names()), set(other.names())
    if a != b:
        missing, extra = sorted(a - b), sorted(b - a)
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:3])}{' …' if len(missing) > 3 else ''}")
        if extra:
            detail.append(f"unexpected {', '.join(extra[:3])}{' …' if len(extra) > 3 else ''}")
        raise IncompatibleWeights(f"{other.folder}: tensor names differ from the base ({'; '.join(detail)})")
    for n in base.names():
        if base.spec(n).shape != other.spec(n).shape:
            raise IncompatibleWeights(
                f"{other.folder}: tensor {n} has shape {list(other.spec(n).shape)}, "
                f"the base has {list(base.spec(n).shape)}"
            )


# -- verbs -------------------------------------------------------------------------------
def add_base(
    core: Core, name: str, source: str, revision: str | None = None, hub: dict | None = None
) -> BaseModel:
    """`hub` ({source, revision, revision_sha}): the Hub origin of a local copy, for a bundle's
    base whose pins this folder matched, so cards name the same Hub id in both registries."""
    check_name(name, "base name")
    folder, sha = Path(source).expanduser(), None
    if folder.is_dir():
        pass
    elif looks_like_path(source):  # a mistyped folder is never sent to the Hub
        what = "not a folder" if folder.exists() else "no such folder"
        raise NotFound("base source", source, f"{what}; a Hub repo id is ORG/NAME")
    else:
        folder, sha = download(source, revision)
    folder = folder.resolve()
    info = inspect_folder(folder)
    remember_pins(core, folder, info)
    if hub is not None:
        source, revision, sha = hub["source"], hub.get("revision"), hub["revision_sha"]
    base = base_row(name, source, revision, sha, folder, info)

    def write() -> BaseModel:
        with core.Session.begin() as s:
            if s.scalar(select(BaseModel.id).where(BaseModel.name == name)) is not None:
                raise AlreadyExists(f"base {name} already exists")
            s.add(base)
            core.audit(s, "base.add", name, {"source": source, "revision_sha": sha, "digest": base.digest})
            s.flush()
            return lookup_base(s, name)

    added = core.write(write)
    base_norm(core, added, SafetensorsFolder(folder))  # read while the files are hot from hashing
    return added


def remember_pins(core: Core, folder: Path, info: FolderInfo) -> None:
    cache = core.stat_cache()
    for fname, (digest, _) in info.files.items():
        cache.remember(folder / fname, digest)


def base_row(
    name: str, source: str, revision: str | None, sha: str | None, folder: Path, info: FolderInfo
) -> BaseModel:
    """A new BaseModel row from an inspected folder (`base add`, and bundle import in its
    own transaction, so a refused import leaves no base behind)."""
    pins = {f: d for f, (d, _) in info.files.items()}
    return BaseModel(
        name=name,
        source=source,
        revision=revision,
        revision_sha=sha,
        path=str(folder),
        architecture=info.architecture,
        model_type=info.model_type,
        dtype=info.dtype,
        param_count=info.param_count,
        digest=named_digest(pins),
        files=[BaseFile(filename=f, sha256=d, size=n) for f, (d, n) in info.files.items()],
    )


def base_norm(core: Core, b: BaseModel, base_w: TensorReader) -> float:
    """‖θbase‖ over the float matrices (plausibility's yardstick), computed once per base digest
    when the base is added, and cached under home."""
    import numpy as np

    cache = core.home / ".cache" / "base-norms.json"
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        known = {}
    if b.digest not in known:
        total = 0.0
        for name in base_w.names():
            spec = base_w.spec(name)
            # matrices only: norm scales start at 1.0 in every model, so they would hide a foreign base
            if spec.tag in FLOATS and len(spec.shape) >= 2:
                for a, c in row_blocks(spec.shape):
                    total += sum_squares(to_f32(base_w.read_rows(name, a, c), spec.tag))
        known[b.digest] = float(np.sqrt(total))
        cache.parent.mkdir(exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
        tmp.write_text(json.dumps(known))
        os.replace(tmp, cache)  # readers never see a half-written cache
    return known[b.digest]


def list_bases(core: Core) -> list[BaseModel]:
    """Every base, each with `path` set to its folder on this host (see `here`)."""
    with core.Session() as s:
        found = list(
            s.scalars(select(BaseModel).options(selectinload(BaseModel.files)).order_by(BaseModel.name))
        )
        host = host_id(core.home)
        for b in found:
            here(s, b, host)
        return found


def get_base(core: Core, name: str) -> BaseModel:
    """The base, with `path` set to its folder on this host (see `here`)."""
    with core.Session() as s:
        return here(s, lookup_base(s, name), host_id(core.home))


def here(s: Session, b: BaseModel, host: str) -> BaseModel:
    """Point `b.path` at this host's copy: the folder located for this host, else the folder
    recorded when the base was added, else (Hub bases) its snapshot in this host's Hugging
    Face cache. The recorded folder stays in `b.recorded_path`.

    The object is detached from the session before `path` changes, so nothing is written.
    """
    s.expunge(b)
    b.recorded_path = b.path
    found = location(s, b.id, host)
    if found is None and not Path(b.path).is_dir():
        snap = cached_snapshot(b, {f.filename: f.size for f in b.files})
        found = str(snap) if snap is not None else None
    if found is not None:
        b.path = found
    return b


def lookup_base(s: Session, name: str) -> BaseModel:
    b = s.scalar(select(BaseModel).options(selectinload(BaseModel.files)).where(BaseModel.name == name))
    if b is None:
        raise NotFound("base", name)
    return b


def checked_base(core: Core, name: str) -> tuple[BaseModel, SafetensorsFolder]:
    """The base with its pins re-verified: changed bytes are refused before any use."""
    b = get_base(core, name)
    check_pins(Path(b.path), pins_of(b), b.name, core.stat_cache())
    return b, SafetensorsFolder(b.path)


def pins_of(b: BaseModel) -> dict[str, str]:
    return {f.filename: f.sha256 for f in b.files}


def architecture_at(folder: Path) -> str:
    return architecture_of(read_config(folder))
