"""DPO's reference log-probs, computed once and shared by θ+ and θ−.

θ+ and θ− see the same pairs with the labels switched, so their reference log-probs (the
base's log-probability of each chosen and rejected answer) are the same numbers: θ+'s
trainer computes them once before training, θ− takes them with the labels swapped, and
no reference model runs during training.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReferenceLogps:
    """Per pair, the base's summed log-prob of the chosen and of the rejected answer."""

    chosen: tuple[float, ...]
    rejected: tuple[float, ...]

    def switched(self) -> ReferenceLogps:
        """θ−'s reference: the same numbers with the labels swapped, as its pairs are."""
        return ReferenceLogps(self.rejected, self.chosen)


def trainer_class(dpo_trainer: type) -> type:
    """trl's DPOTrainer whose reference log-probs are given, or computed once in memory.

    trl's own precompute caches them in a file under the dataset's cache folder, which for an
    in-memory dataset is a temporary folder of the main process: the other ranks of a
    distributed launch cannot open it. Computed here, every rank holds all of them.
    """

    class SharedReferenceDPOTrainer(dpo_trainer):
        def __init__(self, *args, given_reference: ReferenceLogps | None = None, **kwargs):
            self._given_reference = given_reference  # read by the precompute, during __init__
            super().__init__(*args, **kwargs)

        def _precompute_ref_logps(self, dataset, name, batch_size):
            if name != "train" or self.is_deepspeed_enabled:  # DeepSpeed needs trl's inference engine
                return super()._precompute_ref_logps(dataset, name, batch_size)
            given = self._given_reference or self._reference_logps(dataset, batch_size)
            from datasets import Value

            for column, values in (
                ("ref_chosen_logps", given.chosen),
                ("ref_rejected_logps", given.rejected),
            ):
                # float32, as trl's own precompute stores them: shared and computed give the same loss
                dataset = dataset.add_column(column, list(values)).cast_column(column, Value("float32"))
            return dataset

        def _reference_logps(self, dataset, batch_size) -> ReferenceLogps:
            import torch
            from torch.utils.data import DataLoader

            loader = self.accelerator.prepare(
                DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator, shuffle=False)
            )
            model = self.ref_model or self.model
            chosen, rejected = [], []
            for batch in loader:  # each rank a share of the batches; gathered back in order
                c, r = self.compute_ref_log_probs(model, batch)
                c, r = self.accelerator.gather_for_metrics((c, r))
                chosen.append(c.float().cpu())
                rejected.append(r.float().cpu())
            c, r = torch.cat(chosen), torch.cat(rejected)
            return ReferenceLogps(tuple(float(x) for x in c), tuple(float(x) for x in r))

    return SharedReferenceDPOTrainer
