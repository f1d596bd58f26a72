"""Hugging Face Hub bases: repo id or path, a revision pinned to its commit, the cached snapshot.

A source that looks like a folder is never sent to the Hub; a revision is recorded with the
commit it resolved to, by which any host finds the base again in its own Hugging Face cache.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from registry.errors import NotFound

if TYPE_CHECKING:
    from registry.db.models import BaseModel

# ORG/NAME as the Hub spells repo ids (no "--" or ".." inside, exactly one slash)
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
COMMIT = re.compile(r"^[0-9a-f]{40}$")
PATTERNS = ["*.safetensors", "*.json", "*.model", "*.txt", "*.jinja", "*.tiktoken"]


def looks_like_path(source: str) -> bool:
    """A source a person typed as a folder: never sent to the Hub.

    Anything starting with `.`, `/` or `~`, holding a backslash, `..`, `--` or more than one
    slash, or whose first component is an existing folder here (`models/bsae` when `models/`
    exists) is a path; so is anything that exists.
    """
    if not repo_id_shaped(source) or os.path.exists(source):
        return True
    return Path(source.split("/", 1)[0]).is_dir()


def repo_id_shaped(source: str) -> bool:
    """Spelled as a Hub repo id (looks only at the text, so every host answers alike)."""
    return bool(REPO_ID.match(source)) and ".." not in source and "--" not in source


def hub_cache() -> Path:
    """The Hugging Face hub cache of this host (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path("~/.cache/huggingface/hub").expanduser()


def download(repo_id: str, revision: str | None) -> tuple[Path, str | None]:
    """Fetch safetensors + config + tokenizer files; return the folder and the commit sha.

    The revision is resolved to its commit first and that commit downloaded, so a branch
    that moves meanwhile cannot give files of one commit under the sha of another.
    """
    from huggingface_hub import HfApi, snapshot_download

    sha = revision if revision and COMMIT.match(revision) else None
    if sha is None:
        try:
            sha = HfApi().model_info(repo_id, revision=revision).sha
        except Exception:  # offline: the snapshot's folder name is the commit
            sha = None
    try:
        folder = Path(snapshot_download(repo_id, revision=sha or revision, allow_patterns=PATTERNS))
    except Exception as e:
        raise NotFound("base source", repo_id, f"Hub download failed: {str(e).splitlines()[0]}") from None
    if sha is None and COMMIT.match(folder.name):
        sha = folder.name
    return folder, sha


def hub_id(b: BaseModel) -> str | None:
    """The Hub repo id a base came from, or None for a base added from a local folder."""
    if b.revision_sha:
        return b.source
    # rows from before commits were recorded: a repo id whose files sit in a hub cache snapshot
    recorded = getattr(b, "recorded_path", None) or b.path  # the same answer on every host
    if repo_id_shaped(b.source) and "/snapshots/" in recorded.replace(os.sep, "/"):
        return b.source
    return None


def cached_snapshot(b: BaseModel, pins: dict[str, int]) -> Path | None:
    """This host's cached snapshot of a Hub base: its recorded commit's, else (older rows) the
    first snapshot holding every pinned file at its pinned size. The caller re-checks the pins."""
    repo = hub_id(b)
    if repo is None:
        return None
    cache = hub_cache()
    commit = b.revision_sha or (b.revision if b.revision and COMMIT.match(b.revision) else None)
    if commit:
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(repo, "config.json", cache_dir=cache, revision=commit)
            if isinstance(hit, str):
                return Path(hit).parent
        except Exception:  # an older huggingface_hub or a damaged cache: scan it below
            pass
    snapshots = cache / f"models--{repo.replace('/', '--')}" / "snapshots"
    candidates = [snapshots / commit] if commit else sorted(snapshots.glob("*"))
    for folder in candidates:
        try:
            if all((folder / f).stat().st_size == n for f, n in pins.items()):
                return folder
        except OSError:
            continue
    return None
