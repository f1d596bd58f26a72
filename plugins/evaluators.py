"""`answer_length`: mean number of tokens a model writes (greedy) to the verbose held-out prompts."""

from __future__ import annotations

from registry.plugins.spec import Evaluator


class AnswerLength(Evaluator):
    max_new_tokens = 32

    def score(self, model, tokenizer) -> float:
        import torch

        from registry_plugins.verbose import plugin

        prompts = [p.prompt for p in plugin.heldout()]
        eos = tokenizer.eos_token_id
        lengths = []
        model.eval()
        with torch.no_grad():
            for prompt in prompts:
                ids = torch.tensor([tokenizer(prompt, add_special_tokens=False).input_ids])
                n = 0
                for _ in range(self.max_new_tokens):
                    nxt = int(model(ids).logits[0, -1].argmax())
                    if nxt == eos:
                        break
                    ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
                    n += 1
                lengths.append(n)
        return sum(lengths) / len(lengths)


answer_length = AnswerLength(
    name="answer_length",
    description="Mean greedy answer length (tokens, at most 32) on the verbose plugin's held-out prompts.",
)
