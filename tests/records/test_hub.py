"""Hub bases through a mocked huggingface_hub boundary: a revision pinned to its commit, the
base found again in another Hugging Face cache, path-like sources never sent to the Hub, and
the card's `base_model`."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import huggingface_hub
import pytest
import yaml

from registry.errors import NotFound

SHA = "0123456789abcdef0123456789abcdef01234567"


def _card(folder) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text.split("---")[1])


@pytest.fixture
def hub(monkeypatch, tmp_path, models):
    """A fake Hub holding org/tiny (the tiny base) at commit SHA; records every call."""
    calls = []
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))

    class Api:
        def model_info(self, repo, revision=None):
            calls.append(("model_info", repo, revision))
            if repo != "org/tiny":
                raise OSError(f"404 Client Error: Repository Not Found for {repo}\nmore")
            return SimpleNamespace(sha=SHA)

    def snapshot_download(repo, revision=None, allow_patterns=None):
        calls.append(("snapshot_download", repo, revision))
        if repo != "org/tiny":
            raise OSError(f"404 Client Error: Repository Not Found for {repo}\nmore")
        snap = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / SHA
        if not snap.exists():
            shutil.copytree(models["base"], snap)
        return str(snap)

    monkeypatch.setattr(huggingface_hub, "HfApi", Api)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return SimpleNamespace(calls=calls, cache=cache)


def test_hub_revision_recorded_with_its_commit(home, hub, models, tmp_path, cli):
    from registry import Registry

    reg = Registry.init(home)
    code, out, err = cli("--json", "base", "add", "hubtiny", "org/tiny", "--revision", "main")
    assert code == 0, err
    shown = json.loads(out)
    assert (shown["source"], shown["revision"], shown["revision_sha"]) == ("org/tiny", "main", SHA)
    # the branch is resolved first and exactly that commit downloaded
    assert hub.calls == [("model_info", "org/tiny", "main"), ("snapshot_download", "org/tiny", SHA)]
    assert reg.base("hubtiny").path == str(hub.cache / "models--org--tiny" / "snapshots" / SHA)

    reg.import_vector("helpful", "hubtiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "hubtiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    first = reg.materialize("r", tmp_path / "out")
    assert _card(tmp_path / "out")["base_model"] == "org/tiny"
    lock = json.loads((tmp_path / "out" / "registry-lock.json").read_text())
    assert lock["base"]["revision"] == "main" and lock["base"]["revision_sha"] == SHA

    # another host: nothing at the recorded folder, the same commit in its own HF cache
    other = tmp_path / "other-cache"
    snap = other / "models--org--tiny" / "snapshots" / SHA
    snap.parent.mkdir(parents=True)
    shutil.move(hub.cache / "models--org--tiny" / "snapshots" / SHA, snap)
    (other / "models--org--tiny" / "refs").mkdir()
    (other / "models--org--tiny" / "refs" / "main").write_text(SHA)
    wrong = other / "models--org--tiny" / "snapshots" / ("f" * 40)  # another commit: not taken
    shutil.copytree(models["other_base"], wrong)
    hub.calls.clear()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_CACHE", str(other))
        assert reg.base("hubtiny").path == str(snap)
        again = reg.materialize("r", tmp_path / "again", reuse=False)
    assert again.output_digest == first.output_digest
    assert hub.calls == []  # found in the cache: the Hub is never asked
    # and with no copy anywhere, the refusal names base locate
    with pytest.raises(Exception, match=r"registry base locate hubtiny PATH"):
        reg.materialize("r", tmp_path / "none", reuse=False)
    reg.close()


def test_offline_commit_taken_from_the_snapshot_folder(home, hub, monkeypatch):
    from registry import Registry

    def offline(self, repo, revision=None):
        raise OSError("offline")

    monkeypatch.setattr(type(huggingface_hub.HfApi()), "model_info", offline)
    reg = Registry.init(home)
    b = reg.add_base("hubtiny", "org/tiny", revision="v1.0")
    assert (b.revision, b.revision_sha) == ("v1.0", SHA)
    assert hub.calls[-1] == ("snapshot_download", "org/tiny", "v1.0")
    reg.close()


def test_hub_errors_are_one_line(home, hub, cli):
    from registry import Registry

    Registry.init(home).close()
    code, _out, err = cli("base", "add", "x", "org/missing", "--revision", "main")
    assert code == 1
    assert err.strip().splitlines() == [
        "Error: base source not found: org/missing "
        "(Hub download failed: 404 Client Error: Repository Not Found for org/missing)"
    ]
    assert hub.calls == [("model_info", "org/missing", "main"), ("snapshot_download", "org/missing", "main")]


@pytest.mark.parametrize("source", ["./nope", "/abs/nope", "~/nope", "models/nope", "a/b/c", "nope", "a\\b"])
def test_path_like_sources_never_reach_the_hub(home, hub, tmp_path, monkeypatch, cli, source):
    from registry import Registry

    Registry.init(home).close()
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()  # `models/nope` is then a mistyped path, not a repo id
    code, out, err = cli("base", "add", "x", source)
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"Error: base source not found: {source} (no such folder; a Hub repo id is ORG/NAME)"
    ]
    assert hub.calls == []


def test_a_file_is_not_a_folder(sqlite_reg, hub, tmp_path):
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    with pytest.raises(NotFound, match=r"not a folder; a Hub repo id is ORG/NAME"):
        sqlite_reg.add_base("x", str(tmp_path / "weights.safetensors"))
    assert hub.calls == []


def test_card_base_model_of_a_local_base_is_its_name(home, models, tmp_path, monkeypatch):
    from registry import Registry

    monkeypatch.chdir(tmp_path)
    shutil.copytree(models["base"], tmp_path / "models" / "base")
    reg = Registry.init(home)
    reg.add_base("tiny", "models/base")  # a relative folder: once sent as a Hub id to the card
    assert reg.base("tiny").revision_sha is None
    reg.import_vector("helpful", "tiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    reg.materialize("r", tmp_path / "out")
    assert _card(tmp_path / "out")["base_model"] == "tiny"
    assert "revision_sha" not in json.loads((tmp_path / "out" / "registry-lock.json").read_text())["base"]
    reg.close()


def test_bundle_keeps_the_hub_origin_so_outputs_match(home, hub, models, tmp_path):
    from registry import Registry
    from registry.exchange.bundle import export_bundle, import_bundle

    reg = Registry.init(home)
    reg.add_base("hubtiny", "org/tiny", revision="main")
    reg.import_vector("helpful", "hubtiny", models["plus"])
    reg.add_recipe({"name": "r", "base": "hubtiny", "terms": [{"vector": "helpful", "weight": 0.5}]})
    export_bundle(reg, ["r@v1"], tmp_path / "r.bundle")
    target = Registry.init(tmp_path / "target")
    import_bundle(target, tmp_path / "r.bundle", {"hubtiny": str(models["base"])})  # a local copy
    b = target.base("hubtiny")
    assert (b.source, b.revision, b.revision_sha, b.path) == ("org/tiny", "main", SHA, str(models["base"]))
    a_out = reg.materialize("r", tmp_path / "a")
    b_out = target.materialize("r", tmp_path / "b")
    assert _card(tmp_path / "b")["base_model"] == "org/tiny"
    assert a_out.output_digest == b_out.output_digest
    assert [c for c in hub.calls if c[0] == "snapshot_download"] == [("snapshot_download", "org/tiny", SHA)]
    reg.close()
    target.close()
