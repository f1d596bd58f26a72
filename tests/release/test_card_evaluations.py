"""A materialized output's card carries its recipe's recorded evaluations: a table in the body,
Hub `model-index` results at the recipe's own weights, the evaluation digests in the lock."""

from __future__ import annotations

import json
import re

from tests.records.test_evaluations import fields


def test_card_has_the_evaluation_table_and_model_index(loaded, tmp_path):
    import yaml

    loaded.add_recipe({"name": "mix", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    plain = loaded.materialize("mix", tmp_path / "plain")
    card = (tmp_path / "plain" / "README.md").read_text()
    assert "Recorded evaluations" not in card and "model-index" not in card
    hostile = fields(loaded, "mix", kind="recipe", prompts_source="<img src=x onerror=alert(1)> | `x`")
    rec = loaded.record_evaluation(**hostile)
    m = loaded.materialize("mix", tmp_path / "out", reuse=False)
    assert m.output_digest == plain.output_digest  # the weights do not change
    text = (tmp_path / "out" / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    [index] = meta["model-index"]
    assert index["name"] == "mix-v1"
    [result] = index["results"]
    got = {x["type"]: x["value"] for x in result["metrics"]}
    assert got == rec.point({"helpful": 1.0}).metrics == {"answer_length": 11.0, "ppl_drift": 2.5}
    assert result["dataset"]["revision"] == rec.prompts_digest
    body = text.split("---", 2)[2]
    assert "## Recorded evaluations" in body and f"Evaluation {rec.id} by tester" in body
    assert "| η helpful | answer\\_length | ppl\\_drift |" in body
    assert "| -1 | 9 | 2.5 |" in body and "| +1 | 11 | 2.5 |" in body
    assert "\\<img src=x onerror=alert\\(1\\)\\> \\| \\`x\\`" in body  # inert (card_text)
    assert not re.search(r"(?<!\\)<img", body)
    lock = json.loads((tmp_path / "out" / "registry-lock.json").read_text())
    assert [e["digest"] for e in lock["notes"]["evaluations"]] == [rec.digest]
