"""Where the store's bytes live: a local folder, or object storage through fsspec.

The vector store speaks in relative keys (`data/<id>/<tensor>/c.0.0`); this module maps
them to files or objects. Local folders use plain file calls (the fast path); any other
URL (`s3://bucket/prefix`, `gs://…`, `memory://…`) goes through fsspec, whose s3fs
backend takes credentials and endpoint from the environment / AWS configuration.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
from pathlib import Path
from typing import Protocol

from registry.errors import IntegrityError, MissingExtra

# the most any one store file may hold when its reader gives no tighter bound: a chunk is
# about 8 MiB of float32 (tensor_io.BLOCK_BYTES), metadata a few KiB
READ_LIMIT = 256 << 20


class BlobStore(Protocol):
    """Relative keys to bytes; every backend offers exactly this."""

    remote: bool

    def read(self, key: str, limit: int = READ_LIMIT) -> bytes: ...
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


def read_regular(path: Path, limit: int, label: str | Path) -> bytes:
    """A regular file's bytes, at most `limit` of them; anything else is refused in one line.

    The store belongs to whoever can write it: a FIFO where a chunk should be would block
    `read_bytes()` for ever, a link to /dev/zero would fill memory. So the file is opened
    without following a final link and without blocking, must be a regular file, and is read
    only up to its bound. A missing file still raises FileNotFoundError (callers say what is lost).
    """
    flags = (
        os.O_RDONLY
        | getattr(os, "O_NOFOLLOW", 0)
        | getattr(os, "O_NONBLOCK", 0)
        | getattr(os, "O_CLOEXEC", 0)
    )
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if isinstance(e, FileNotFoundError):
            raise
        if e.errno == errno.ELOOP:
            raise IntegrityError(f"store file {label} is a symbolic link; refused") from None
        raise IntegrityError(f"store file {label} cannot be opened ({e.strerror})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IntegrityError(f"store file {label} is not a regular file; refused")
        if st.st_size > limit:
            raise IntegrityError(
                f"store file {label} is {st.st_size} bytes, more than the {limit} it may hold"
            )
        chunks, left = [], limit + 1  # one byte more tells a file that grew past its bound
        while left > 0:
            block = os.read(fd, min(left, 1 << 20))
            if not block:
                break
            chunks.append(block)
            left -= len(block)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise IntegrityError(f"store file {label} is more than the {limit} bytes it may hold")
    return data


class LocalBlobs:
    remote = False

    def __init__(self, root: Path):
        self.root = root

    def read(self, key: str, limit: int = READ_LIMIT) -> bytes:
        return read_regular(self.root / key, limit, key)

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
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url)
        except ImportError as e:  # the protocol's backend is not installed (fsspec names it)
            said = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MissingExtra(f"store {self.url}: {said}") from None

    def _p(self, key: str) -> str:
        return f"{self.root}/{key}".rstrip("/")

    def read(self, key: str, limit: int = READ_LIMIT) -> bytes:
        data = self.fs.cat_file(self._p(key), start=0, end=limit + 1)  # one request, bounded
        if len(data) > limit:
            raise IntegrityError(f"store file {key} is more than the {limit} bytes it may hold")
        return data

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
