"""`registry push`: the exact huggingface_hub calls and files (the Hub is not reachable here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from registry.errors import NotApproved, NotFound, PublishError


@pytest.fixture
def hub(monkeypatch):
    """Record HfApi calls at the library boundary; snapshot the folder upload_folder would send."""
    from huggingface_hub import CommitInfo, HfApi

    calls: list[tuple[str, tuple, dict]] = []

    def create_repo(self, repo_id, **kw):
        calls.append(("create_repo", (repo_id,), kw))
        return f"https://huggingface.co/{repo_id}"

    def create_branch(self, repo_id, **kw):
        calls.append(("create_branch", (repo_id,), kw))

    def upload_folder(self, **kw):
        folder = Path(kw["folder_path"])
        kw["sent"] = {
            p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
        }
        calls.append(("upload_folder", (), kw))
        url = f"https://huggingface.co/{kw['repo_id']}/commit/abc123"
        return CommitInfo(
            commit_url=url, commit_message=kw["commit_message"], commit_description="", oid="abc123"
        )

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_branch", create_branch)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    return calls


@pytest.fixture
def made(sqlite_reg, models, tmp_path):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "hs", "base": "tiny", "terms": [{"vector": "helpful", "weight": 0.75}]})
    sqlite_reg.materialize("hs", tmp_path / "out")
    return sqlite_reg


def test_push_sends_the_folder_with_card_metadata_and_lock(made, hub, cli, tmp_path):
    made.approve("helpful@v1", "ok", kind="vector")
    made.approve("hs@v1", "ok")
    code, out, err = cli("--json", "push", "hs", "--repo", "org/hs", "--private", "--revision", "rc")
    assert code == 0, err
    res = json.loads(out)
    assert [c[0] for c in hub] == ["create_repo", "create_branch", "upload_folder"]
    assert hub[0][1:] == (("org/hs",), {"private": True, "repo_type": "model", "exist_ok": True})
    assert hub[1][1:] == (("org/hs",), {"branch": "rc", "repo_type": "model", "exist_ok": True})
    up = hub[2][2]
    assert up["repo_id"] == "org/hs" and up["revision"] == "rc" and up["repo_type"] == "model"
    assert Path(up["folder_path"]) == tmp_path / "out" and up["commit_message"] == "hs@v1 (linear, approved)"
    on_disk = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    assert up["sent"] == on_disk
    assert {"README.md", "registry-lock.json", "config.json", "model.safetensors"} <= set(up["sent"])
    meta = yaml.safe_load(up["sent"]["README.md"].decode().split("---")[1])
    assert meta["base_model"] == "tiny" and meta["base_model_relation"] == "merge"
    r = made.recipe("hs@v1")
    assert meta["preference_recipe"]["terms"] == [
        {"vector": "helpful", "version": 1, "weight": 0.75, "digest": r.terms[0].vector.digest}
    ]
    assert meta["preference_recipe"]["content_digest"] == r.content_digest
    assert json.loads(up["sent"]["registry-lock.json"])["recipe"]["content_digest"] == r.content_digest
    assert res["commit"] == "abc123" and res["files"] == sorted(on_disk)
    [event] = [e for e in made.log("hs") if e.action == "recipe.push"]
    assert event.details == {"repo": "org/hs", "revision": "rc", "commit": "abc123", "private": True}


def test_push_refusals(made, hub, cli, tmp_path, monkeypatch):
    code, _, err = cli("push", "hs", "--repo", "org/hs")
    assert code == 1 and "recipe hs@v1 is draft: only approved recipes are pushed" in err and not hub
    with pytest.raises(NotApproved):
        made.push("hs", "org/hs")
    code, _, err = cli("push", "hs", "--repo", "not a repo", "--allow-draft")
    assert code == 1 and "invalid Hub repository 'not a repo'" in err and not hub
    res = made.push("hs", "org/hs", allow_draft=True)  # a draft, explicitly
    assert res["status"] == "draft" and [c[0] for c in hub] == ["create_repo", "upload_folder"]
    assert hub[1][2]["revision"] is None
    (tmp_path / "out" / "model.safetensors").write_bytes(b"tampered")
    with pytest.raises(NotFound, match="verified materialization of not found: hs@v1"):
        made.push("hs", "org/hs", allow_draft=True)

    from huggingface_hub import HfApi

    made.materialize("hs", tmp_path / "again")

    def offline(self, *a, **kw):
        raise ConnectionError("Hub unreachable\nmore")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    code, _, err = cli("push", "hs", "--repo", "org/hs", "--allow-draft")
    assert (
        code == 1 and err.strip() == "Error: push of hs@v1 to org/hs failed: ConnectionError: Hub unreachable"
    )
    with pytest.raises(PublishError):
        made.push("hs", "org/hs", allow_draft=True)
