"""The pairs a run's base generated, kept with the run so it can be audited and replayed.

The run's lineage holds their digest (`params.pair_generation.pairs_digest`); `run_pairs`
recomputes it from the rows when they are read, so an edited row is caught.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.db.models import RunPair, TrainingRun
from registry.errors import NotFound, RegistryError
from registry.util.digests import pairs_digest

if TYPE_CHECKING:
    from registry.core import Core


def generated_pairs_digest(rows: Iterable[Any]) -> str:
    """Every generated pair, kept or dropped, in order (rows with prompt, chosen, rejected,
    contrast, dropped_because): the digest a run's lineage holds and `run pairs` re-checks."""
    return pairs_digest(
        (r.prompt, r.chosen, r.rejected, str(r.contrast), r.dropped_because or "") for r in rows
    )


def record_pairs(
    core: Core, run_id: int, rows: Iterable[Any], lineage: dict[str, Any], kept: int, digest: str
) -> None:
    """Store every generated pair and put how they were made into the run's lineage, at once."""
    rows = list(rows)

    def write() -> None:
        with core.Session.begin() as s:
            run = s.get(TrainingRun, run_id)
            for i, r in enumerate(rows):
                s.add(
                    RunPair(
                        run_id=run_id,
                        position=i,
                        prompt=r.prompt,
                        chosen=r.chosen,
                        rejected=r.rejected,
                        contrast=r.contrast,
                        kept=r.dropped_because is None,
                        dropped_because=r.dropped_because,
                    )
                )
            run.params = {**(run.params or {}), "pair_generation": lineage}
            run.dataset_digest, run.dataset_size = digest, kept

    core.write(write)


def run_pairs(core: Core, run_id: int, dropped: bool = True) -> dict[str, Any]:
    """A run's generated pairs in order (only the kept ones unless `dropped`), digest checked."""
    with core.Session() as s:
        run = s.get(TrainingRun, run_id)
        if run is None:
            raise NotFound(f"training run not found: {run_id}")
        rows = list(s.scalars(select(RunPair).where(RunPair.run_id == run_id).order_by(RunPair.position)))
        generation = (run.params or {}).get("pair_generation")
    if generation is None:
        raise NotFound(f"run {run_id} generated no pairs (its plugin supplied them)")
    digest = generated_pairs_digest(rows)
    if digest != generation.get("pairs_digest"):
        raise RegistryError(f"run {run_id}: stored pairs do not match the digest in its lineage")
    return {
        "run": run_id,
        "pairs_digest": digest,
        "counts": generation.get("counts", {}),
        "contrasts": generation.get("contrasts", []),
        "pairs": [
            {
                "position": r.position,
                "prompt": r.prompt,
                "chosen": r.chosen,
                "rejected": r.rejected,
                "contrast": r.contrast,
                "kept": r.kept,
                "dropped_because": r.dropped_because,
            }
            for r in rows
            if dropped or r.kept
        ],
    }
