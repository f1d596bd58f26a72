"""An untrusted tar, read so that every member is checked before a single byte is written.

tarfile's own `extractall(filter="data")` depends on the Python version (3.11.7 lets a
symlink chain that overruns PATH_MAX through: CVE-2025-4517) and checks links after the
fact. So nothing here uses it: the member headers are read and judged first (regular files
and folders only; no link, device or FIFO of any kind; normalized relative names; no
duplicates; each file named by the caller's layout with at most the size it allows), and
only when all pass are the files written, by this code, with `open(..., "xb")` under a
fresh folder that holds nothing but what it wrote. Any refusal is one line.

Before tarfile reads a single header, the raw 512-byte headers are walked here
(`bound_extended_headers`): Python 3.11.7 parses a pax extended header in quadratic time
(CVE-2024-6232: a 143 KB header costs 40 s of CPU), so extended headers larger than
PAX_LIMIT, global headers and pax `size` overrides are refused first, in linear time.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, RegistryError
from registry.util import bounded_json

MANIFEST = "manifest.json"
MANIFEST_LIMIT = 64 << 20  # bytes: a manifest lists digests and lineage, never data
MAX_MEMBERS = 1 << 20
MAX_NAME = 1024  # bytes of a member name; each part at most 255 (NAME_MAX)
_COPY = 1 << 20
PAX_LIMIT = 8 << 10  # bytes of one extended header (pax or GNU long name): a name is at most 1 KiB
_BLOCK = 512
_EXTENDED = {b"x", b"X", b"L", b"K"}  # pax (POSIX, Solaris) and GNU long name / link headers
_DATA = {b"0", b"\0", b"7"}  # members whose data blocks follow the header (tarfile's isreg)
_HIGH = bytes(range(128, 256))
_NO_DATA = {b"1", b"2", b"3", b"4", b"5", b"6"}  # links, devices, folders, FIFOs


def one_line(e: BaseException) -> str:
    """An exception's message on one line (tarfile's 'could not be opened' spans several)."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _kind(m: tarfile.TarInfo) -> str:
    if m.issym():
        return "symbolic link"
    if m.islnk():
        return "hard link"
    if m.ischr() or m.isblk():
        return "device"
    if m.isfifo():
        return "FIFO"
    if m.issparse():
        return "sparse file"
    return f"member of type {m.type!r}"


def check_name(path: Path, name: str) -> str:
    """A member name as a normalized relative path, or a one-line refusal."""
    parts = name.split("/")
    bad = (
        not name
        or len(name.encode("utf-8", "surrogateescape")) > MAX_NAME
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or any(p in ("", ".", "..") or len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts)
    )
    if bad:
        raise IntegrityError(f"{path}: bundle member {name[:200]!r} is not a plain relative name; refused")
    return name


def _number(field: bytes) -> int | None:
    """A header's numeric field as tarfile reads it (octal, or GNU base-256); None if malformed."""
    if field[:1] in (b"\x80", b"\xff"):
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[:1] == b"\xff" else n
    try:
        return int(field.split(b"\0", 1)[0].strip() or b"0", 8)
    except ValueError:
        return None


def _checksum_ok(block: bytes) -> bool:
    """tarfile's header checksum test (unsigned or signed sum, the checksum field as spaces)."""
    recorded = _number(block[148:156])
    plain = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(plain)
    signed = unsigned - 256 * (len(plain) - len(plain.translate(None, _HIGH)))
    return recorded is not None and recorded in (unsigned, signed)


def _pax_keys(path: Path, buf: bytes) -> list[bytes]:
    """The keywords of a pax header's records (`LENGTH KEY=VALUE\n`), parsed in linear time."""
    keys, pos = [], 0
    while pos < len(buf) and buf[pos] != 0:
        space = buf.find(b" ", pos, pos + 21)
        digits = buf[pos:space] if space > 0 else b""
        length = int(digits) if digits.isdigit() else 0
        record = buf[space + 1 : pos + length] if length else b""
        if not length or pos + length > len(buf) or not record.endswith(b"\n") or b"=" not in record:
            raise IntegrityError(f"{path}: bundle holds a malformed pax extended header; refused")
        keys.append(record.split(b"=", 1)[0])
        pos += length
    return keys


def bound_extended_headers(path: Path, f) -> None:
    """Walk the raw tar headers as tarfile will, refusing what would make its parsing costly.

    Stops where tarfile stops (the end marker, a header it would not accept) or where it will
    refuse a member anyway (a sparse file): nothing past that point is ever parsed."""
    offset, headers = 0, 0
    while True:
        f.seek(offset)
        block = f.read(_BLOCK)
        if len(block) < _BLOCK or block.count(0) == _BLOCK or not _checksum_ok(block):
            return
        headers += 1
        if headers > 2 * MAX_MEMBERS:
            raise IntegrityError(f"{path}: bundle holds more than {MAX_MEMBERS} members; refused")
        kind, size = block[156:157], _number(block[124:136])
        if size is None or size < 0:
            return
        if kind == b"g":
            raise IntegrityError(f"{path}: bundle holds a global pax header; refused")
        if kind in _EXTENDED:
            if size > PAX_LIMIT:
                raise IntegrityError(
                    f"{path}: bundle holds a {size}-byte extended header, more than {PAX_LIMIT}; "
                    "refused before parsing it"
                )
            if kind in (b"x", b"X"):
                keys = _pax_keys(path, f.read(size))
                if b"size" in keys:
                    raise IntegrityError(f"{path}: bundle holds a pax size override; refused")
                if any(k.startswith(b"GNU.sparse") for k in keys):
                    return  # a sparse member: refused as such before the next header is read
        elif kind == b"S":
            return  # a GNU sparse member: refused as such
        elif kind in _NO_DATA:
            size = 0
        offset += _BLOCK + -(-size // _BLOCK) * _BLOCK


class Archive:
    """A bundle's tar, opened for reading: `manifest()`, then `extract(work, limit_of)`."""

    def __init__(self, path: Path):
        self.path = path
        try:
            # a bundle named on the command line may be a FIFO or a device: regular files only
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            f = os.fdopen(fd, "rb")
        except OSError as e:
            raise RegistryError(f"{path}: cannot read the bundle ({one_line(e)})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise RegistryError(f"{path}: not a registry bundle (not a regular file)")
            os.set_blocking(fd, True)
            bound_extended_headers(path, f)
            f.seek(0)
            self.tar = tarfile.open(path, "r:", fileobj=f)  # noqa: SIM115 (closed by close()) a plain tar
        except (OSError, tarfile.TarError, EOFError) as e:
            f.close()
            raise RegistryError(
                f"{path}: not a registry bundle (not a plain tar archive: {one_line(e)})"
            ) from None
        except BaseException:
            f.close()
            raise
        self.file = f
        try:
            self.members = self._headers()
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.tar.close()  # a tar opened on a file object leaves that file open
        self.file.close()

    def _headers(self) -> list[tarfile.TarInfo]:
        """Every member's header, judged; nothing is read past the headers."""
        members, seen = [], set()
        try:
            while (m := self.tar.next()) is not None:
                if len(members) >= MAX_MEMBERS:
                    raise IntegrityError(
                        f"{self.path}: bundle holds more than {MAX_MEMBERS} members; refused"
                    )
                name = check_name(self.path, m.name)
                if not (m.isdir() or (m.type in (tarfile.REGTYPE, tarfile.AREGTYPE) and not m.issparse())):
                    raise IntegrityError(
                        f"{self.path}: bundle member {name!r} is a {_kind(m)}; only regular files "
                        "and folders are allowed (links of any kind are refused)"
                    )
                if name in seen:
                    raise IntegrityError(f"{self.path}: bundle member {name!r} appears twice; refused")
                seen.add(name)
                members.append(m)
        except (OSError, tarfile.TarError, EOFError) as e:
            raise RegistryError(f"{self.path}: not a registry bundle ({one_line(e)})") from None
        return members

    def manifest(self) -> Any:
        """The parsed manifest.json (a regular file of bounded size), read without extracting."""
        m = next((m for m in self.members if m.name == MANIFEST), None)
        if m is None or not m.isfile():
            raise RegistryError(f"{self.path}: not a registry bundle (no {MANIFEST})")
        if m.size > MANIFEST_LIMIT:
            raise IntegrityError(
                f"{self.path}: {MANIFEST} is {m.size} bytes, over the {MANIFEST_LIMIT} limit"
            )
        try:
            raw = self.tar.extractfile(m).read()
            if len(raw) != m.size:
                raise EOFError("unexpected end of data")
            return bounded_json.loads(raw)
        except (OSError, tarfile.TarError, EOFError) as e:
            raise RegistryError(f"{self.path}: not a registry bundle ({one_line(e)})") from None
        except ValueError as e:
            raise RegistryError(f"{self.path}: not a registry bundle (manifest: {one_line(e)})") from None

    def check(self, limit_of: Callable[[str], int | None], total: int | None = None) -> None:
        """Every file named by the layout (`limit_of(name)`: its largest allowed size, None when
        the layout names no such file) within that size, all files within `total` bytes;
        folders only above such files."""
        folders, size = set(), 0
        for m in self.members:
            if m.isfile():
                size += m.size
                if total is not None and size > total:
                    raise IntegrityError(
                        f"{self.path}: bundle members add up to more than the {total} bytes its manifest implies; refused"
                    )
                limit = limit_of(m.name)
                if limit is None:
                    raise IntegrityError(
                        f"{self.path}: bundle member {m.name!r} is not named by its manifest; refused"
                    )
                if m.size > limit:
                    raise IntegrityError(
                        f"{self.path}: bundle member {m.name!r} is {m.size} bytes, more than the "
                        f"{limit} its manifest allows; refused"
                    )
                parts = m.name.split("/")
                folders.update("/".join(parts[:k]) for k in range(1, len(parts)))
        for m in self.members:
            if m.isdir() and m.name not in folders:
                raise IntegrityError(
                    f"{self.path}: bundle folder {m.name!r} holds no file of its manifest; refused"
                )

    def extract(self, work: Path, limit_of: Callable[[str], int | None], total: int | None = None) -> None:
        """Check every member (`check`), then write the files under `work` (an empty folder)."""
        self.check(limit_of, total)
        try:
            for m in self.members:
                dest = work.joinpath(*m.name.split("/"))
                if m.isdir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = self.tar.extractfile(m)
                # O_EXCL: never through a link, never over a file already written
                fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
                with open(fd, "wb") as f:
                    left = m.size
                    while left:
                        block = src.read(min(_COPY, left))
                        if not block:
                            raise EOFError("unexpected end of data")
                        f.write(block)
                        left -= len(block)
        except (tarfile.TarError, EOFError) as e:
            raise RegistryError(f"{self.path}: not a registry bundle ({one_line(e)})") from None
        except OSError as e:
            raise RegistryError(f"{self.path}: cannot extract the bundle ({one_line(e)})") from None
