"""Hostile tar members (issue 24.1/24.2, 27.8): every member is judged before anything is written.

Each test checks that the victim outside is intact, that nothing was written inside the
extraction folder either, and that the refusal is one line.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from registry.errors import RegistryError
from registry.exchange.archive import Archive
from tests.test_security import assert_nothing_visible


def cve_2025_4517_members(
    work: Path, target_file: Path, content: bytes
) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    """The symlink chain that overruns PATH_MAX, so os.path.realpath (which tarfile's `data`
    filter relies on) stops resolving and sees the escape as inside; the kernel follows it out."""
    members = []
    comp, steps, p = "d" * 247, "abcdefghijklmnop", ""
    for s in steps:
        d = tarfile.TarInfo(os.path.join(p, comp))
        d.type = tarfile.DIRTYPE
        link = tarfile.TarInfo(os.path.join(p, s))
        link.type, link.linkname = tarfile.SYMTYPE, comp
        members += [(d, None), (link, None)]
        p = os.path.join(p, comp)
    linkpath = os.path.join(*steps, "l" * 254)
    back = tarfile.TarInfo(linkpath)
    back.type, back.linkname = tarfile.SYMTYPE, "../" * len(steps)
    escape = tarfile.TarInfo("escape")
    escape.type = tarfile.SYMTYPE
    escape.linkname = linkpath + "/.." * (len(work.resolve().parts) - 1) + str(target_file.parent)
    f = tarfile.TarInfo("escape/" + target_file.name)
    f.size = len(content)
    return [*members, (back, None), (escape, None), (f, content)]


def append(src: Path, dst: Path, members) -> Path:
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            tout.addfile(m, tin.extractfile(m))
        for info, data in members:
            tout.addfile(info, io.BytesIO(data) if data is not None else None)
    return dst


def scratch_is_empty(reg) -> bool:
    scratch = reg.home / ".scratch"
    return not scratch.exists() or all(not any(p.iterdir()) for p in scratch.iterdir())


def test_symlink_chain_bundle_writes_nothing_outside_nor_inside(
    bundle, target, victim, tmp_path, cli, monkeypatch
):
    from registry.exchange.bundle import import_bundle

    toml = target.home / "registry.toml"
    before = toml.read_bytes()
    # the extraction folder is .scratch/bundle-XXXXXXXX under the home: as deep as this one
    depth_twin = target.home / ".scratch" / "bundle-xxxxxxxx"
    hostile = append(bundle, tmp_path / "cve.tar", cve_2025_4517_members(depth_twin, toml, b"[governance]\n"))
    with pytest.raises(RegistryError, match=r"'a' is a symbolic link; only regular files and folders") as e:
        import_bundle(target, hostile)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300
    assert toml.read_bytes() == before
    assert_nothing_visible(target, victim)
    assert scratch_is_empty(target)
    monkeypatch.setenv("REGISTRY_HOME", str(target.home))
    code, out, err = cli("import-bundle", hostile)
    assert code != 0 and out == "" and len(err.strip().splitlines()) == 1 and "symbolic link" in err
    assert toml.read_bytes() == before


def _info(name: str, kind: bytes, **more) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    for k, v in more.items():
        setattr(info, k, v)
    return info


KINDS = {
    "symlink inside": (_info("vectors/x", tarfile.SYMTYPE, linkname="0"), "symbolic link"),
    "hard link": (_info("vectors/h", tarfile.LNKTYPE, linkname="manifest.json"), "hard link"),
    "fifo": (_info("vectors/f", tarfile.FIFOTYPE), "FIFO"),
    "char device": (_info("vectors/c", tarfile.CHRTYPE, devmajor=1, devminor=3), "device"),
    "block device": (_info("vectors/b", tarfile.BLKTYPE, devmajor=7, devminor=0), "device"),
    "absolute name": (_info("/tmp/evil", tarfile.REGTYPE), "not a plain relative name"),
    "dot-dot name": (_info("vectors/../../evil", tarfile.REGTYPE), "not a plain relative name"),
    "duplicate name": (_info("manifest.json", tarfile.REGTYPE), "appears twice"),
}


@pytest.mark.parametrize("case", list(KINDS))
def test_every_member_kind_but_files_and_folders_is_refused_before_writing(case, bundle, tmp_path):
    info, message = KINDS[case]
    hostile = append(bundle, tmp_path / "h.tar", [(info, None)])
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RegistryError, match=message) as e, Archive(hostile) as arc:
        arc.extract(work, lambda name: 1 << 30)
    assert "\n" not in str(e.value)
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil").exists()


def test_tar_bomb_member_not_in_the_manifest_is_refused_before_writing(bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    bomb = _info("vectors/0/padding.bin", tarfile.REGTYPE, size=4 << 20)  # zeros: cheap to build
    hostile = append(bundle, tmp_path / "bomb.tar", [(bomb, b"\0" * (4 << 20))])
    with pytest.raises(RegistryError, match=r"'vectors/0/padding.bin' is not named by its manifest"):
        import_bundle(target, hostile, {})
    assert_nothing_visible(target, victim)
    assert scratch_is_empty(target)


def test_member_larger_than_its_manifest_implies_is_refused(bundle, target, victim, tmp_path):
    from registry.exchange.bundle import import_bundle

    name = "vectors/0/model.layers.0.mlp.up_proj.weight/c.0.0"  # 128×64 float32 at most: 32 KiB + headers
    big = 1 << 20
    with tarfile.open(bundle) as tin, tarfile.open(tmp_path / "big.tar", "w") as tout:
        for m in tin.getmembers():
            data = tin.extractfile(m).read()
            if m.name == name:
                data = data + b"\0" * big
                m = _info(m.name, tarfile.REGTYPE, size=len(data))
            tout.addfile(m, io.BytesIO(data))
    with pytest.raises(RegistryError, match=rf"'{name}' is \d+ bytes, more than the \d+ its manifest allows"):
        import_bundle(target, tmp_path / "big.tar", {})
    assert_nothing_visible(target, victim)
    assert scratch_is_empty(target)


def test_header_claiming_a_huge_member_is_refused_without_reading_it(bundle, tmp_path):
    """A 1 GiB member (a sparse file here: no disk, no time): refused from its header alone."""
    raw = bundle.read_bytes().rstrip(b"\0")
    raw += b"\0" * (-len(raw) % 512)
    head = _info("vectors/0/huge", tarfile.REGTYPE, size=1 << 30).tobuf(format=tarfile.GNU_FORMAT)
    with open(tmp_path / "claim.tar", "wb") as f:
        f.write(raw + head)
        f.truncate(len(raw) + len(head) + (1 << 30) + 1024)  # the data and the end blocks: zeros
    work = tmp_path / "work"
    work.mkdir()
    with (
        pytest.raises(RegistryError, match=r"'vectors/0/huge' is 1073741824 bytes, more than the 65536"),
        Archive(tmp_path / "claim.tar") as arc,
    ):
        arc.extract(work, lambda name: 64 << 10)
    assert list(work.iterdir()) == []


def test_a_file_that_is_not_a_tar_gives_one_complete_line(tmp_path, cli, sqlite_reg):
    junk = tmp_path / "notes.bundle"
    junk.write_text("these are not the bytes you are looking for\n" * 40)
    code, out, err = cli("import-bundle", junk)
    assert code != 0 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    # the whole reason, not tarfile's cut-off "file could not be opened successfully:"
    assert "not a registry bundle (not a plain tar archive:" in lines[0] and lines[0].endswith(")")
    assert "successfully:" not in lines[0]
