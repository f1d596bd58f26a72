"""Publishing: push a materialized recipe version to the Hugging Face Hub with its card and lock.

Only approved recipes go out unless a draft is allowed explicitly; the folder pushed is the
newest materialization of that version whose files still match their recorded digests.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import InvalidName, NotApproved, NotFound, PublishError
from registry.records.recipes import get_recipe
from registry.release.materialize import list_materializations
from registry.release.output_folders import LOCK_NAME, verify_files

if TYPE_CHECKING:
    from registry.core import Core

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}")


def published_folder(core: Core, ref: str) -> tuple[Any, Path]:
    """(recipe, folder): the newest verified materialization of `ref`."""
    r = get_recipe(core, ref)
    for m in reversed(list_materializations(core, r.ref)):
        folder = Path(m.out_path)
        if folder.is_dir() and (folder / LOCK_NAME).is_file() and not verify_files(folder, m.files):
            return r, folder
    raise NotFound(
        "verified materialization of", r.ref, f"run `registry materialize {r.ref} --out DIR` first"
    )


def push(
    core: Core,
    ref: str,
    repo: str,
    private: bool = False,
    revision: str | None = None,
    allow_draft: bool = False,
    token: str | None = None,
) -> dict[str, Any]:
    """Upload the materialized folder of recipe `ref` to the Hub model repo `repo` (ORG/NAME)."""
    if not _REPO.fullmatch(repo or "") or ".." in repo:
        raise InvalidName(f"invalid Hub repository {repo!r}: expected ORG/NAME")
    r = get_recipe(core, ref)
    if r.status != "approved" and not allow_draft:
        raise NotApproved(
            f"recipe {r.ref} is {r.status}: only approved recipes are pushed "
            f"(approve it with `registry approve {r.ref} --reason TEXT`, or pass --allow-draft)"
        )
    r, folder = published_folder(core, r.ref)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo, private=private, repo_type="model", exist_ok=True)
        if revision:
            api.create_branch(repo, branch=revision, repo_type="model", exist_ok=True)
        info = api.upload_folder(
            repo_id=repo,
            folder_path=folder,
            repo_type="model",
            revision=revision,
            commit_message=f"{r.ref} ({r.method}, {r.status})",
            commit_description=f"Materialized by the preference-vector registry; recipe digest {r.content_digest}.",
        )
    except Exception as e:  # the Hub client raises many types (HTTP, connection, auth)
        raise PublishError(
            f"push of {r.ref} to {repo} failed: {type(e).__name__}: {str(e).splitlines()[0]}"
        ) from e
    result = {
        "recipe": r.ref,
        "status": r.status,
        "repo": repo,
        "repo_url": str(url),
        "private": private,
        "revision": revision or "main",
        "folder": str(folder),
        "files": sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()),
        "commit_url": getattr(info, "commit_url", None),
        "commit": getattr(info, "oid", None),
    }
    core.audit_now("recipe.push", r.ref, {k: result[k] for k in ("repo", "revision", "commit", "private")})
    return result
