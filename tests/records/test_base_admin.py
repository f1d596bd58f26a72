"""Portable bases: one registry used from two hosts (two homes over one database), each with
the base at its own folder; `base locate`, the one-line refusal naming it; `base remove`."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select

from registry.db.models import AuditEvent, BaseLocation, BaseModel, TrainingRun
from registry.errors import IntegrityError, NotFound
from registry.records.base_admin import BaseInUse
from registry.util.digests import file_sha256
from registry.util.host_id import host_id


def _two_hosts(home, db_url, tmp_path, monkeypatch):
    from registry import Registry

    monkeypatch.setenv("REGISTRY_HOST_ID", "host-a")
    a = Registry.init(home, db=db_url)
    b = Registry.init(tmp_path / "home-b", db=db_url, store=str(home / "vectors.zarr"))
    return a, b


def _digests(folder):
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def test_two_hosts_each_locate_their_own_folder(home, db_url, models, tmp_path, monkeypatch, cli):
    a, b = _two_hosts(home, db_url, tmp_path, monkeypatch)
    at_a = tmp_path / "host-a" / "base"
    shutil.copytree(models["base"], at_a)
    a.add_base("tiny", str(at_a))
    a.import_vector("helpful", "tiny", models["plus"])
    a.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    first = a.materialize("r", tmp_path / "out-a")

    # host B has the files at another folder; host A's folder is not there
    at_b = tmp_path / "host-b" / "base"
    at_b.parent.mkdir()
    shutil.move(at_a, at_b)
    monkeypatch.setenv("REGISTRY_HOST_ID", "host-b")
    with pytest.raises(IntegrityError, match=r"registry base locate tiny PATH"):
        b.materialize("r", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    code, out, err = cli("--home", b.home, "materialize", "r", "--out", tmp_path / "refused")
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"no folder {at_a} on this host" in lines[0]
    assert "`registry base locate tiny PATH`" in lines[0]

    code, out, err = cli("--home", b.home, "base", "locate", "tiny", at_b)
    assert code == 0, err
    assert f"base tiny located at {at_b} for host host-b" in out
    assert b.base("tiny").path == str(at_b) and b.base("tiny").recorded_path == str(at_a)
    again = b.materialize("r", tmp_path / "out-b", reuse=False)
    assert again.output_digest == first.output_digest
    assert _digests(tmp_path / "out-b") == _digests(tmp_path / "out-a")
    code, out, err = cli("--home", b.home, "verify")
    assert code == 0, err

    # back on host A: its files return to the recorded folder; B's row does not touch A
    shutil.copytree(at_b, at_a)
    monkeypatch.setenv("REGISTRY_HOST_ID", "host-a")
    assert a.base("tiny").path == str(at_a)
    moved_a = tmp_path / "host-a" / "moved"
    shutil.move(at_a, moved_a)
    a.locate_base("tiny", moved_a)
    assert a.base_locations("tiny") == {"host-a": str(moved_a), "host-b": str(at_b)}
    monkeypatch.setenv("REGISTRY_HOST_ID", "host-b")
    assert b.base("tiny").path == str(at_b)  # A's locate left B's folder alone
    with b.Session() as s:
        events = [
            (e.actor, e.details["host"], e.details["path"], e.details["previous"])
            for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "base.locate"))
        ]
    assert events == [("tester", "host-b", str(at_b), None), ("tester", "host-a", str(moved_a), None)]
    a.close()
    b.close()


def test_locate_checks_every_pin_and_writes_nothing_on_mismatch(sqlite_reg, models, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(models["base"], bad)
    (bad / "config.json").write_text((bad / "config.json").read_text().replace("}", ' ,"x": 1}', 1))
    with pytest.raises(IntegrityError, match=r"config.json sha256 mismatch"):
        sqlite_reg.locate_base("tiny", bad)
    with pytest.raises(NotFound, match=r"folder not found: .*nowhere"):
        sqlite_reg.locate_base("tiny", tmp_path / "nowhere")
    with pytest.raises(NotFound, match=r"base not found: other"):
        sqlite_reg.locate_base("other", models["base"])
    assert sqlite_reg.base_locations("tiny") == {}


def test_host_id_is_per_home_and_stable(tmp_path, monkeypatch):
    monkeypatch.delenv("REGISTRY_HOST_ID", raising=False)
    (tmp_path / "h1").mkdir()
    (tmp_path / "h2").mkdir()
    one, two = host_id(tmp_path / "h1"), host_id(tmp_path / "h2")
    assert one != two and one == host_id(tmp_path / "h1")
    assert one.split("/")[1] == (tmp_path / "h1" / ".host-id").read_text().strip()
    monkeypatch.setenv("REGISTRY_HOST_ID", "ci-runner-7")
    assert host_id(tmp_path / "h1") == "ci-runner-7"


def test_verify_names_locate_for_a_missing_base(sqlite_reg, models, tmp_path, cli):
    moved = tmp_path / "copy"
    shutil.copytree(models["base"], moved)
    sqlite_reg.add_base("copy", str(moved))
    shutil.rmtree(moved)
    code, out, err = cli("verify")
    assert code == 1 and err.strip() == "Error: verify found 1 problem(s)"
    assert out.strip() == f"base copy: no folder {moved} on this host (registry base locate copy PATH)"


def test_remove_refused_while_used_then_allowed(sqlite_reg, models, tmp_path, cli):
    reg = sqlite_reg
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    code, _out, err = cli("base", "remove", "tiny")
    assert code == 1
    assert err.strip().splitlines() == [
        "Error: base tiny is in use by vectors helpful@v1; recipes r@v1: remove those first"
    ]
    with pytest.raises(BaseInUse):
        reg.remove_base("tiny")
    assert reg.base("tiny").name == "tiny"

    copy = tmp_path / "unused"
    shutil.copytree(models["base"], copy)
    reg.add_base("unused", str(copy))
    reg.locate_base("unused", copy)
    with reg.Session.begin() as s:  # a failed training run that produced no vector
        s.add(
            TrainingRun(
                kind="dpo",
                base_id=s.scalar(select(BaseModel.id).where(BaseModel.name == "unused")),
                vector_name="x",
                status="failed",
            )
        )
    digest = reg.base("unused").digest
    code, out, err = cli("base", "remove", "unused")
    assert code == 0, err
    assert out.strip() == "removed base unused and 1 training runs without vectors"
    with pytest.raises(NotFound):
        reg.base("unused")
    assert [b.name for b in reg.bases()] == ["tiny"]
    with reg.Session() as s:
        assert s.scalars(select(BaseLocation)).all() == []
        ev = s.scalar(select(AuditEvent).where(AuditEvent.action == "base.remove"))
    assert ev.object == "unused" and ev.actor == "tester"
    assert ev.details["base"]["digest"] == digest and len(ev.details["runs_removed"]) == 1
    assert set(ev.details["base"]["files"]) == {p.name for p in copy.iterdir()}
    assert copy.is_dir()  # the files themselves are never deleted
    reg.add_base("unused", str(copy))  # the name is free again
    assert code == 0


def test_remove_refused_while_training_runs(sqlite_reg):
    with sqlite_reg.Session.begin() as s:
        s.add(
            TrainingRun(
                kind="dpo",
                base_id=s.scalar(select(BaseModel.id).where(BaseModel.name == "tiny")),
                vector_name="x",
                status="running",
            )
        )
    with pytest.raises(BaseInUse, match=r"base tiny is in use by running training runs \d+"):
        sqlite_reg.remove_base("tiny")
