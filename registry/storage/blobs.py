"""Where the store's bytes live: a local folder, or object storage through fsspec.

The vector store speaks in relative keys (`data/<id>/<tensor>/c.0.0`); this module maps
them to files or objects. Local folders use plain file calls (the fast path); any other
URL (`s3://bucket/prefix`, `gs://…`, `memory://…`) goes through fsspec, whose s3fs
backend takes credentials and endpoint from the environment / AWS configuration.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Protocol


class BlobStore(Protocol):
    """Relative keys to bytes; every backend offers exactly this."""

    remote: bool

    def read(self, key: str) -> bytes: ...
    def write(self, key: str, data: bytes) -> None: ...
    def exists(self, key: str) -> bool: ...
    def dirs(self, key: str) -> list[str]: ...
    def files(self, key: str) -> list[str]: ...
    def size(self, key: str) -> int: ...
    def mtime(self, key: str) -> float: ...
    def delete(self, key: str) -> None: ...
    def put_tree(self, local: Path, key: str) -> None: ...
    def nonempty(self) -> bool: ...


def open_blobs(url: str) -> BlobStore:
    if "://" in url and not url.startswith("file://"):
        return FsspecBlobs(url)
    return LocalBlobs(Path(url.removeprefix("file://")))


class LocalBlobs:
    remote = False

    def __init__(self, root: Path):
        self.root = root

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        path = self.root / key
        try:
            path.write_bytes(data)
        except FileNotFoundError:  # folders are made on the first write into them
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()

    def dirs(self, key: str) -> list[str]:
        base = self.root / key
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def files(self, key: str) -> list[str]:
        base = self.root / key
        return (
            sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file()) if base.is_dir() else []
        )

    def size(self, key: str) -> int:
        return sum(p.stat().st_size for p in (self.root / key).rglob("*") if p.is_file())

    def mtime(self, key: str) -> float:
        base = self.root / key
        return max((p.stat().st_mtime for p in base.rglob("*") if p.is_file()), default=base.stat().st_mtime)

    def delete(self, key: str) -> None:
        shutil.rmtree(self.root / key, ignore_errors=True)

    def put_tree(self, local: Path, key: str) -> None:
        shutil.move(local, self.root / key)

    def nonempty(self) -> bool:
        return self.root.exists() and any(self.root.iterdir())


class FsspecBlobs:
    remote = True

    def __init__(self, url: str):
        import fsspec

        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _p(self, key: str) -> str:
        return f"{self.root}/{key}".rstrip("/")

    def read(self, key: str) -> bytes:
        return self.fs.cat_file(self._p(key))

    def write(self, key: str, data: bytes) -> None:
        self.fs.pipe_file(self._p(key), data)

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._p(key))

    def dirs(self, key: str) -> list[str]:
        try:
            entries = self.fs.ls(self._p(key), detail=True, refresh=True)
        except FileNotFoundError:
            return []
        return sorted(e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if e["type"] == "directory")

    def files(self, key: str) -> list[str]:
        base = self._p(key)
        return sorted(p[len(base) + 1 :] for p in self.fs.find(base))

    def size(self, key: str) -> int:
        return sum(info["size"] for info in self.fs.find(self._p(key), detail=True).values())

    def mtime(self, key: str) -> float:
        stamps = []
        for info in self.fs.find(self._p(key), detail=True).values():
            t = info.get("LastModified") or info.get("mtime") or info.get("created")
            stamps.append(t.timestamp() if hasattr(t, "timestamp") else float(t or 0))
        return max(stamps, default=0.0)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm(self._p(key), recursive=True)
        self.fs.invalidate_cache()

    def put_tree(self, local: Path, key: str) -> None:
        for p in sorted(local.rglob("*")):
            if p.is_file():
                self.write(f"{key}/{p.relative_to(local).as_posix()}", p.read_bytes())
        shutil.rmtree(local, ignore_errors=True)

    def nonempty(self) -> bool:
        return self.fs.exists(self.root) and bool(self.fs.ls(self.root))
