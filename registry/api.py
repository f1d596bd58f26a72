"""The public façade: `Registry` binds the verbs of each concept module to one `Core`.

from registry import Registry
reg = Registry.open("/path/to/home")
reg.materialize("helpful-safe@prod", "out/")
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.config import InterferencePolicy
from registry.core import Core
from registry.db.models import AuditEvent, BaseModel, Materialization, Recipe, Vector
from registry.evaluation import consistency, evidence, retention, scoring, sweep, tune
from registry.evaluation.retention import RetentionCheck
from registry.evaluation.sweep import SweepResult
from registry.governance import aliases, archive, lifecycle, signing
from registry.ops import backup, maintenance
from registry.plugins import loader
from registry.records import (
    annotations,
    base_admin,
    bases,
    evaluations,
    interference,
    lineage,
    recipes,
    run_pairs,
    vector_import,
    vectors,
)
from registry.release import adapter, materialize, publish
from registry.training import add_preference
from registry.webhooks import delivery, subscriptions

if TYPE_CHECKING:
    from registry.db.filters import Filter
    from registry.records.evaluations import EvaluationRecord
    from registry.records.interference import Gram
    from registry.storage.tensor_io import SafetensorsFolder
    from registry.training.options import TrainingOptions


class Registry(Core):
    """Opening (`init`, `open`, `upgrade`) comes from `Core`; everything else is a bound verb."""

    # -- bases -----------------------------------------------------------------------------
    def add_base(self, name: str, source: str, revision: str | None = None) -> BaseModel:
        return bases.add_base(self, name, source, revision)

    def bases(self) -> list[BaseModel]:
        return bases.list_bases(self)

    def base(self, name: str) -> BaseModel:
        return bases.get_base(self, name)

    def checked_base(self, name: str) -> tuple[BaseModel, SafetensorsFolder]:
        return bases.checked_base(self, name)

    def locate_base(self, name: str, path: str | Path) -> dict[str, Any]:
        return base_admin.locate_base(self, name, path)

    def remove_base(self, name: str) -> dict[str, Any]:
        return base_admin.remove_base(self, name)

    def base_locations(self, name: str) -> dict[str, str]:
        return base_admin.base_locations(self, name)

    # -- vectors and training --------------------------------------------------------------
    def import_vector(
        self,
        name: str,
        base: str,
        positive: str | Path,
        negative: str | Path | None = None,
        policy: InterferencePolicy | None = None,
        require_lossless: bool = False,
        on_tensor: Callable[[int], None] | None = None,
    ) -> Vector:
        return vector_import.import_vector(
            self, name, base, positive, negative, policy, require_lossless, on_tensor
        )

    def import_low_rank(
        self,
        name: str,
        base: str,
        factors: dict[str, tuple[Any, Any]],
        policy: InterferencePolicy | None = None,
        sources: dict[str, Any] | None = None,
    ) -> Vector:
        """A vector in low-rank form: `factors` maps tensor names to (B, A), φ = B·A there."""
        return vector_import.import_low_rank(self, name, base, factors, policy, sources)

    def vectors(self, base: str | None = None, filter: Filter | None = None) -> list[Vector]:
        """Live vectors (`filter`: status, base, tags, search, archived; catalogue.Filter.parse)."""
        return vectors.list_vectors(self, base, filter)

    def vector(self, ref: str, base: str | None = None) -> Vector:
        return vectors.get_vector(self, ref, base)

    def add_preference(
        self,
        plugin: str,
        base: str,
        name: str | None = None,
        seed: int = 0,
        options: TrainingOptions | None = None,
        plugin_options: dict[str, Any] | None = None,
        policy: InterferencePolicy | None = None,
        log: Callable[[str], None] = lambda _msg: None,
        work: str | Path | None = None,
    ) -> Vector | None:
        return add_preference.add_preference(
            self, plugin, base, name, seed, options, plugin_options, policy, log, Path(work) if work else None
        )

    def run_pairs(self, run_id: int, dropped: bool = True) -> dict[str, Any]:
        return run_pairs.run_pairs(self, run_id, dropped)

    def interference(self, base: str | None = None) -> tuple[list[Vector], Gram]:
        return interference.interference(self, base)

    def compare(self, a: str, b: str, base: str | None = None) -> dict[str, Any]:
        return interference.compare(self, a, b, base)

    def merged_state(
        self, base: str, terms: list[tuple[str, float]], method: str = "linear", params: dict | None = None
    ):
        return scoring.merged_state(self, base, terms, method, params)

    # -- recipes and governance ------------------------------------------------------------
    def add_recipe(
        self, source: str | Path | dict[str, Any], allow_deprecated: bool = False
    ) -> tuple[Recipe, bool]:
        return recipes.add_recipe(self, source, allow_deprecated)

    def recipes(self, filter: Filter | None = None) -> list[Recipe]:
        return recipes.list_recipes(self, filter)

    def recipe(self, ref: str) -> Recipe:
        return recipes.get_recipe(self, ref)

    def aliases(self, name: str | None = None):
        return aliases.list_aliases(self, name)

    def aliases_behind(self, obj: Recipe | Vector) -> list[str]:
        return aliases.aliases_behind(self, obj)

    def set_alias(self, ref: str, alias: str, force: bool = False) -> Recipe:
        return aliases.set_alias(self, ref, alias, force)

    def set_status(
        self, ref: str, status: str, reason: str, kind: str = "recipe", base: str | None = None, sign_key=None
    ) -> Recipe | Vector:
        return lifecycle.set_status(self, ref, status, reason, kind, base, sign_key)

    def approve(
        self, ref: str, reason: str, kind: str = "recipe", base: str | None = None, sign_key=None
    ) -> Recipe | Vector:
        return lifecycle.set_status(self, ref, "approved", reason, kind, base, sign_key)

    def sign(
        self, ref: str, key: str | Path, kind: str = "recipe", base: str | None = None
    ) -> tuple[Recipe | Vector, str]:
        """Sign an approval given earlier without a key (approve's rules apply to the signer)."""
        return lifecycle.sign_approval(self, ref, key, kind, base)

    # -- tags, descriptions, archive -------------------------------------------------------
    def tag(
        self, ref: str, tags: dict[str, str], kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return annotations.set_tags(self, ref, tags, kind, base)

    def untag(
        self, ref: str, keys: list[str], kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return annotations.remove_tags(self, ref, keys, kind, base)

    def describe(
        self, ref: str, text: str | None, kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return annotations.describe(self, ref, text, kind, base)

    def archive(
        self,
        ref: str,
        kind: str = "recipe",
        base: str | None = None,
        reason: str | None = None,
        force: bool = False,
    ) -> Recipe | Vector:
        return archive.archive(self, ref, kind, base, reason, force)

    def unarchive(
        self, ref: str, kind: str = "recipe", base: str | None = None, reason: str | None = None
    ) -> Recipe | Vector:
        return archive.unarchive(self, ref, kind, base, reason)

    def trust(self, key_file: str | Path, name: str | None = None):
        return signing.add_trusted(self, key_file, name)

    def deprecate(
        self, ref: str, reason: str, kind: str = "recipe", base: str | None = None
    ) -> Recipe | Vector:
        return lifecycle.set_status(self, ref, "deprecated", reason, kind, base)

    def log(self, obj: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        return lifecycle.audit_log(self, obj, limit)

    # -- materialize -----------------------------------------------------------------------
    def materialize(
        self,
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
        return materialize.materialize(
            self, ref, out, force, on_bytes, shard_bytes, require_approved, reuse, durable, max_ppl_drift,
            sign_key, on_warning,
        )  # fmt: skip

    def materialize_adapter(
        self,
        ref: str,
        out: str | Path,
        rank: int | None = None,
        force: bool = False,
        require_approved: bool = False,
        sign_key: str | Path | None = None,
        max_error: float | None = None,
    ) -> Materialization:
        """A linear recipe as a PEFT LoRA adapter (dense terms: truncated SVD at `rank`); refused,
        with nothing written, when its relative error exceeds `max_error`."""
        return adapter.materialize_adapter(self, ref, out, rank, force, require_approved, sign_key, max_error)

    def materializations(self, ref: str | None = None) -> list[Materialization]:
        return materialize.list_materializations(self, ref)

    def verify_lock(self, lock_path: str | Path) -> list[str]:
        return materialize.verify_lock(self, lock_path)

    # -- maintenance -----------------------------------------------------------------------
    def verify(self, on_item: Callable[[str], None] | None = None) -> list[str]:
        return maintenance.verify(self, on_item)

    def backup(self, dest: str | Path) -> dict[str, Any]:
        return backup.backup(self, dest)

    def orphans(self) -> list[str]:
        return maintenance.orphans(self)

    def gc(self, grace_seconds: float = 3600.0, dry_run: bool = False, force: bool = False) -> dict[str, Any]:
        return maintenance.gc(self, grace_seconds, dry_run, force)

    # -- beyond the paper -------------------------------------------------------------------
    def recipe_interference(self, ref: str) -> tuple[list[Vector], Gram]:
        return interference.recipe_interference(self, ref)

    def lineage(self, ref: str) -> dict[str, Any]:
        return lineage.lineage(self, ref)

    def lineage_of_lock(self, lock_path: str | Path) -> dict[str, Any]:
        """The lineage above a lock, with the lock verified as `verify_lock` does: the tree never
        vouches for a folder whose files or lock differ from what the registry recorded."""
        tree = lineage.lineage_of_lock(self, lock_path)
        problems = materialize.verify_lock(self, tree["lock"]["path"])
        tree["lock"].update(verified=not problems, problems=problems)
        return tree

    def push(
        self,
        ref: str,
        repo: str,
        private: bool = False,
        revision: str | None = None,
        allow_draft: bool = False,
        token: str | None = None,
    ) -> dict[str, Any]:
        return publish.push(self, ref, repo, private, revision, allow_draft, token)

    def retention(self, ref: str | Recipe) -> RetentionCheck:
        return retention.measure(self, ref)

    def tune(
        self,
        recipe: str,
        metric: str,
        target: float,
        vary: str | None = None,
        lo: float = 0.0,
        hi: float = 2.0,
        tol: float | None = None,
        max_evals: int = 12,
        on_eval: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        return tune.tune(self, recipe, metric, target, vary, lo, hi, tol, max_evals, on_eval)

    def consistency(
        self,
        name: str,
        seeds: int = 3,
        base: str | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ) -> dict[str, Any]:
        return consistency.consistency(self, name, seeds, base, log)

    def sweep(
        self,
        recipe: str,
        vary: list[str],
        etas: list[float],
        evaluators: list[str] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> SweepResult:
        return sweep.run_sweep(self, recipe, vary, etas, evaluators, log)

    def plugins(self) -> list[dict[str, str]]:
        return loader.describe()

    # -- recorded evaluations (review evidence) ---------------------------------------------
    def record_sweep(
        self,
        ref: str,
        vary: list[str] | None = None,
        etas: list[float] | None = None,
        evaluators: list[str] | None = None,
        prompts: int | list[str] | None = None,
        samples: int = evidence.DEFAULT_SAMPLES,
        seed: int = 0,
        kind: str | None = None,
        base: str | None = None,
        log: Callable[[str], None] | None = None,
        record: bool = True,
    ) -> EvaluationRecord | dict[str, Any]:
        """Measure `ref` (a recipe, or a vector alone: θbase + η·φ) over an η grid of one or two
        terms and record the evaluation (`record=False`: return its fields, nothing written)."""
        fields = evidence.measure_grid(
            self, ref, vary or [], etas or list(evidence.DEFAULT_ETAS), evaluators or [], prompts, samples,
            seed, kind, base, log,
        )  # fmt: skip
        return evaluations.save_evaluation(self, **fields) if record else fields

    def record_evaluation(self, **fields: Any) -> EvaluationRecord:
        """Record an evaluation measured elsewhere (the fields of `records.evaluations.record_evaluation`)."""
        return evaluations.save_evaluation(self, **fields)

    def evaluations(
        self, ref: str | None = None, kind: str | None = None, base: str | None = None
    ) -> list[EvaluationRecord]:
        """Evaluations of `ref`'s exact digest (a recipe first, else a vector), newest first;
        every evaluation without `ref`."""
        return evaluations.evaluations_of(self, ref, kind, base)

    def evaluation(self, evaluation_id: int) -> EvaluationRecord:
        return evaluations.evaluation(self, evaluation_id)

    # -- webhooks (policy admins; events are queued by every write, sent by the deliverer) -----
    def add_webhook(
        self, name: str, url: str, events: list[str] | None = None, secret_env: str | None = None
    ) -> dict[str, Any]:
        return subscriptions.add_webhook(self, name, url, events, secret_env)

    def webhooks(self) -> list[dict[str, Any]]:
        return subscriptions.list_webhooks(self)

    def remove_webhook(self, name: str) -> dict[str, Any]:
        return subscriptions.remove_webhook(self, name)

    def ping_webhook(self, name: str, settings: delivery.Settings | None = None) -> dict[str, Any]:
        return subscriptions.ping_webhook(self, name, settings)

    def webhook_deliveries(
        self, name: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        return subscriptions.list_deliveries(self, name, status, limit)

    def redeliver(self, delivery_id: int, settings: delivery.Settings | None = None) -> dict[str, Any]:
        return subscriptions.redeliver(self, delivery_id, settings)

    def deliver_webhooks(self, settings: delivery.Settings | None = None) -> dict[str, Any]:
        """One pass of the deliverer: every delivery due now, attempted once."""
        return delivery.deliver_due(self, settings)
