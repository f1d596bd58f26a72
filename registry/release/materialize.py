"""Writing θ = merge(θbase, φ…) as a loadable Hugging Face folder, deterministically.

Tensors stream one row block at a time (aligned with the store's chunks), so memory stays
flat whatever the model size; `outputs` writes the folder all or nothing. An identical
earlier output that still verifies is reused instead of recomputed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from registry.db import outbox
from registry.db.models import Materialization, Recipe, utcnow
from registry.errors import IntegrityError, NotApproved, NotFound
from registry.evaluation.results_log import output_notes
from registry.governance.signing import sign_folder
from registry.merging.engine import DEFAULT_SHARD_BYTES, MergePlan
from registry.merging.methods import get_method
from registry.records.bases import check_pins, checked_base, pins_of
from registry.records.recipes import get_recipe, lookup_recipe
from registry.records.verified_reads import merge_names, verified_vectors
from registry.release.deploy_rounding import RoundingTally, dtype_name
from registry.release.destination import claim
from registry.release.lockfile import build_lock, cached_card, recipe_metadata
from registry.release.output_folders import (
    LOCK_NAME,
    check_free,
    check_replaceable,
    copy_recorded,
    files_to_copy,
    lock_text,
    output_event,
    prepare_out,
    verify_files,
    write_folder,
    write_lock,
)
from registry.storage.tensor_io import (
    DTYPE_NAMES,
)
from registry.util.digests import weights_digest
from registry.util.faults import crashpoint, pause
from registry.util.finite import finite32
from registry.util.memory import recycle_large_blocks
from registry.util.refs import Ref

if TYPE_CHECKING:
    from registry.core import Core


def materialize(
    core: Core,
    ref: str,
    out: str | Path,
    force: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    shard_bytes: int | None = None,
    require_approved: bool = False,
    reuse: bool = True,
    durable: bool = False,
    max_ppl_drift: float | None = None,
    sign_key: str | Path | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> Materialization:
    """Write recipe `ref` to `out`; an identical earlier output that still verifies is reused.

    `max_ppl_drift` (a fraction) gates on `retention`: measured on the in-memory merge first,
    refused above it with nothing written, recorded in the card and the lock otherwise.

    `durable` fsyncs the files before the rename (power-loss safety; a killed process
    never leaves a partial folder either way, since the rename is the commit).
    `require_approved` needs the recipe and every one of its vectors approved; `force`
    replaces only an earlier output of this registry; `sign_key` writes OUT.sig beside it.
    `on_warning` hears, before anything is reused or written, that a version is deprecated.

    A fresh merge also counts where η·φ rounds away in the output dtype
    (`release.deploy_rounding`): the result carries `rounded_away_fraction` and
    `changed_fraction` (None when an earlier output was reused: nothing was merged) and
    `rounding_warning`, one line when more than half the changed weights keep the base's
    value, for the caller to show once its progress is done.
    """
    out = Path(out).resolve()
    r = get_recipe(core, ref)
    if require_approved:
        require_all_approved(r)
    elif on_warning is not None and (notice := deprecation_notice(r, ref)):
        on_warning(notice)
    if force:
        check_replaceable(core, out)
    notes = output_notes(core, r, max_ppl_drift)  # may refuse (retention gate)
    with claim(out):  # one writer per folder, from the first check to the recorded row
        m = _materialize_claimed(core, r, out, force, on_bytes, shard_bytes, reuse, durable, notes)
        if sign_key is not None:
            sign_folder(out, sign_key)
    return m


def _materialize_claimed(
    core: Core, r: Recipe, out: Path, force: bool, on_bytes, shard_bytes, reuse: bool, durable: bool, notes
) -> Materialization:
    t0 = time.perf_counter()
    previous = reusable(core, r, out) if reuse and "retention" not in notes else None
    tally: RoundingTally | None = None  # only a fresh merge is measured
    if previous is not None:
        b, _ = checked_base(core, r.base.name)
        # the lock is rebuilt from the registry's record, never copied (nothing hashes it)
        lock = lock_text(build_lock(r, b, notes), previous.files)
    if not force and not (previous is not None and Path(previous.out_path) == out):
        check_free(core, out)
    if previous is not None and Path(previous.out_path) == out:
        files, reused = dict(previous.files), previous
        try:
            same = (out / LOCK_NAME).read_text() == lock
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            write_lock(out, lock)
    elif previous is not None:
        copy_recorded(Path(previous.out_path), out, previous.files, lock, force, durable)
        files, reused = dict(previous.files), previous
    else:
        for t in r.terms:  # rows written before weights were checked as float32
            if not finite32(t.weight):
                raise IntegrityError(
                    f"recipe {r.ref}: weight {t.weight:g} of {t.vector.ref} is not finite as float32"
                )
        b, base_w = checked_base(core, r.base.name)  # pins first: an unpinned weight file is refused
        # the database's tensor rows say what must exist: a missing array is refused here
        data = verified_vectors(core, [t.vector for t in r.terms], base_w)
        prepare_out(out, force)
        recycle_large_blocks()
        pins = pins_of(b)
        tally = RoundingTally(dtype_name(DTYPE_NAMES[r.dtype]))
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="beside-merge") as aside:
            # the pins are re-hashed and the card built while the merge runs
            plan = MergePlan(
                base=base_w,
                vectors=data,
                tensor_names=set(merge_names(base_w)),  # the base's, which every term covers
                weights=[t.weight for t in r.terms],
                method=get_method(r.method)(params=dict(r.params)),
                out_tag=DTYPE_NAMES[r.dtype],
                copy_files=files_to_copy(Path(b.path), list(pins)),
                card=aside.submit(cached_card, r, b, core.home / ".cache", notes),
                lock=build_lock(r, b, notes),
                shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
                on_bytes=on_bytes,
                checks=[aside.submit(check_pins, Path(b.path), pins, b.name, core.stat_cache()), *data],
                durable=durable,
                workers=core.store.workers,
                observe=tally,
            )
            files, reused = write_folder(plan, out, force), None
            crashpoint("materialize:after-rename")
            pause("materialize:after-rename")
    m = Materialization(
        recipe_id=r.id,
        out_path=str(out),
        output_digest=weights_digest(files),
        inputs_digest=r.content_digest,
        files=files,
        seconds=time.perf_counter() - t0,
        reused_from_id=reused.id if reused else None,
    )

    def write() -> Materialization:
        with core.Session.begin() as s:
            # an earlier output in this folder is gone now: lineage stops listing it
            s.execute(
                update(Materialization)
                .where(Materialization.out_path == str(out), Materialization.replaced_at.is_(None))
                .values(replaced_at=utcnow())
            )
            s.add(m)
            details = {"out": str(out), "output_digest": m.output_digest}
            if reused:
                details["reused_from"] = reused.out_path
            core.audit(s, "materialize", r.ref, details)
            outbox.emit(s, "output.materialized", r.ref, output_event(r, m, "full"), core.actor)
        return m

    m = core.write(write)
    m.recipe = r
    # not database columns: what this call measured (a reused output was not merged here)
    m.rounded_away_fraction = tally.rounded_away_fraction if tally is not None else None
    m.changed_fraction = tally.changed_fraction if tally is not None else None
    m.rounding_warning = tally.warning() if tally is not None else None
    return m


def deprecation_notice(r: Recipe, ref: str) -> str | None:
    """One line when `ref` resolves to a deprecated recipe version or uses a deprecated vector."""
    via = f" (behind {ref})" if ref != r.ref else ""
    if r.status == "deprecated":
        return (
            f"{r.ref}{via} is deprecated ({r.status_reason}); materializing it anyway "
            "(--require-approved refuses it)"
        )
    old = [t.vector.ref for t in r.terms if t.vector.status == "deprecated"]
    if old:
        return f"{r.ref}{via} uses deprecated vector(s) {', '.join(old)}; materializing it anyway"
    return None


def require_all_approved(r: Recipe) -> None:
    """A pipeline's gate: the recipe version and every vector it uses must be approved."""
    if r.status != "approved":
        raise NotApproved(
            f"recipe {r.ref} is {r.status}, not approved (approve it with `registry approve {r.ref} --reason TEXT`)"
        )
    for t in r.terms:
        if t.vector.status != "approved":
            raise NotApproved(
                f"recipe {r.ref} uses vector {t.vector.ref}, which is {t.vector.status}, not approved"
            )


def reusable(core: Core, r: Recipe, out: Path) -> Materialization | None:
    """The newest earlier output of the same inputs whose files still match their digests."""
    with core.Session() as s:
        candidates = list(
            s.scalars(
                select(Materialization)
                .where(
                    Materialization.recipe_id == r.id,
                    Materialization.inputs_digest == r.content_digest,
                    Materialization.replaced_at.is_(None),
                )
                .order_by(Materialization.id.desc())
            )
        )
    candidates.sort(key=lambda m: Path(m.out_path) != out)  # the folder asked for, then the newest
    seen = set()
    for m in candidates:
        if m.out_path in seen or not Path(m.out_path).is_dir():
            continue
        seen.add(m.out_path)
        if not verify_files(Path(m.out_path), m.files):
            return m
    return None


def list_materializations(core: Core, ref: str | None = None) -> list[Materialization]:
    with core.Session() as s:
        q = select(Materialization).options(selectinload(Materialization.recipe)).order_by(Materialization.id)
        if ref:
            q = q.where(Materialization.recipe_id == lookup_recipe(s, Ref.parse(ref)).id)
        return list(s.scalars(q))


def verify_lock(core: Core, lock_path: str | Path) -> list[str]:
    """Re-hash a materialized folder against its lock and the registry's own record."""
    lock_path = Path(lock_path)
    try:
        lock = json.loads(lock_path.read_text())
        files, recorded, rec = lock["files"], lock["output_digest"], lock["recipe"]
        rec_ref = f"{rec['name']}@v{rec['version']}"
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise IntegrityError(f"{lock_path}: not a registry lock file ({e})") from None
    problems = verify_files(lock_path.parent, files)
    if weights_digest(files) != recorded:
        problems.append("lock: output_digest does not match its own file list")
    try:
        r = get_recipe(core, rec_ref)
    except NotFound:
        return [*problems, f"registry: recipe {rec_ref} is unknown here"]
    if r.content_digest != rec.get("content_digest"):
        problems.append(f"registry: recipe {r.ref} content differs from the lock's")
    elif rec != recipe_metadata(r):  # e.g. an edited weight: the lock itself is not hashed
        problems.append(f"lock: recipe section differs from the registry's record of {r.ref}")
    if not any(m.output_digest == recorded for m in list_materializations(core, r.ref)):
        problems.append(f"registry: no materialization of {r.ref} with output digest {recorded[:16]}…")
    return problems
