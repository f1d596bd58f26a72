"""Base models: what a folder contains, and the sha256 pins that guard it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from registry.errors import IncompatibleWeights, IntegrityError
from registry.tensor_io import FLOATS, TAG_NAMES, SafetensorsFolder, sha256_file

# copied into every materialized folder; weights and the index are written anew
NOT_COPIED = {"README.md", "model.safetensors.index.json", ".gitattributes"}


@dataclass
class FolderInfo:
    architecture: str
    model_type: str | None
    dtype: str
    param_count: int
    files: dict[str, tuple[str, int]]  # filename -> (sha256, size)


def pinned_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


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
    files = {p.name: (sha256_file(p), p.stat().st_size) for p in pinned_files(folder)}
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
    problems = []
    for fname, digest in sorted(pins.items()):
        path = folder / fname
        if not path.is_file():
            problems.append(f"{fname} missing")
        elif cache is not None and cache.fresh(path, digest):
            continue
        elif sha256_file(path) != digest:
            problems.append(f"{fname} sha256 mismatch")
        elif cache is not None:
            cache.remember(path, digest)
    if problems:
        raise IntegrityError(
            f"base {name} at {folder} no longer matches its pins: {'; '.join(problems)}", problems
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


class StatCache:
    """Stat fingerprints (size, mtime, ctime, inode) of files whose sha256 was verified.

    Kept per machine under the registry home, never in the shared database: inodes and
    paths mean nothing on another machine. Any write to a file changes its ctime.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            self.entries: dict[str, list] = json.loads(path.read_text())
        except (OSError, ValueError):
            self.entries = {}

    @staticmethod
    def _fingerprint(path: Path) -> list:
        st = path.stat()
        return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]

    def fresh(self, path: Path, digest: str) -> bool:
        entry = self.entries.get(str(path))
        return entry is not None and entry[0] == digest and entry[1:] == self._fingerprint(path)

    def remember(self, path: Path, digest: str) -> None:
        self.entries[str(path)] = [digest, *self._fingerprint(path)]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:  # a read-only home only loses the shortcut
            pass
