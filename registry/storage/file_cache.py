"""Stat fingerprints of verified files, so an unchanged file is not hashed twice."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

from registry.util.digests import file_sha256

_SAVING = threading.Lock()


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

    def sha256(self, path: Path) -> str:
        """A file's sha256, hashed only if its fingerprint changed since it was last hashed
        (base pins before every use; an import's θ± files, read for data only when the same
        fine-tune is imported twice)."""
        entry = self.entries.get(str(path))
        fingerprint = self._fingerprint(path)
        if entry is not None and entry[1:] == fingerprint:
            return entry[0]
        digest = file_sha256(path)
        if self._fingerprint(path) == fingerprint:  # unchanged while it was hashed
            self.remember(path, digest)
        return digest

    @staticmethod
    def _tree_fingerprint(folder: Path) -> list:
        h = hashlib.sha256()
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(
                    f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}\n".encode()
                )
        return [h.hexdigest()]

    def fresh_tree(self, folder: Path, digest: str) -> bool:
        """A folder (a stored array's chunk files) unchanged since its digest was verified."""
        entry = self.entries.get(f"tree:{folder}")
        return entry is not None and entry[0] == digest and entry[1:] == self._tree_fingerprint(folder)

    def remember_tree(self, folder: Path, digest: str) -> None:
        self._save(f"tree:{folder}", [digest, *self._tree_fingerprint(folder)])

    def remember(self, path: Path, digest: str) -> None:
        self._save(str(path), [digest, *self._fingerprint(path)])

    def _save(self, key: str, entry: list) -> None:
        with _SAVING:  # merge threads and the pin check beside them share the file
            self._save_locked(key, entry)

    def _save_locked(self, key: str, entry: list) -> None:
        self.entries[key] = entry
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(self.entries))
            os.replace(tmp, self.path)
        except OSError:  # a read-only home only loses the shortcut
            pass
