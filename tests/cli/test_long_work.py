"""Long work is not silent off a terminal: import, materialize and tune report progress on
stderr (lines for people, JSON lines under --json), and no third-party bar leaks into logs."""

from __future__ import annotations

import json
import re


def progress_lines(err: str) -> list[str]:
    return [x for x in err.splitlines() if re.match(r"^(import|materialize) \S+: ", x)]


def test_import_and_materialize_report_progress_off_a_terminal(sqlite_reg, cli, models, tmp_path):
    code, out, err = cli("vector", "import", "helpful", "--base", "tiny", "--positive", models["plus"])
    assert code == 0 and out.startswith("imported helpful@v1"), err
    lines = progress_lines(err)
    n = len(sqlite_reg.vector("helpful").tensors)
    assert lines[0].startswith(f"import helpful: 1/{n} tensors (")
    assert lines[-1].startswith(f"import helpful: {n}/{n} tensors (100%), ")

    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    code, out, err = cli("materialize", "r", "--out", tmp_path / "m")
    assert code == 0 and out.startswith("materialized r@v1"), err
    lines = progress_lines(err)
    assert lines[0].startswith("materialize r@v1: ") and lines[-1].split(", ")[0].endswith("(100%)")
    written = sum(p.stat().st_size for p in (tmp_path / "m").glob("*.safetensors"))
    mb = re.search(r": ([\d.]+)/([\d.]+) MB", lines[-1])
    assert abs(float(mb[2]) * 1e6 - written) < 0.06e6  # the total is the weights written (± rounding)

    code, out, err = cli(
        "--json", "vector", "import", "again", "--base", "tiny", "--positive", models["plus2"]
    )
    assert code == 0 and json.loads(out)["ref"] == "again@v1"
    events = [json.loads(x) for x in err.splitlines()]  # every stderr line is JSON
    progress = [e for e in events if e["event"] == "progress"]
    assert progress[0]["done"] == 1 and progress[-1]["done"] == progress[-1]["total"] == n
    assert all(e["unit"] == "tensors" and e["label"] == "import again" for e in progress)


def test_tune_reports_each_evaluation_and_no_loading_bar(sqlite_reg, cli, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    sqlite_reg.add_recipe({"name": "r", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]})
    args = [
        "tune",
        "r",
        "--target",
        "answer_length=20",
        "--range",
        "0:1",
        "--max-evals",
        "3",
        "--tol",
        "1000",
    ]
    code, out, err = cli(*args)
    assert code == 0, err
    assert "Loading weights" not in err and "it/s" not in err
    lines = err.strip().splitlines()
    assert lines[0] == "tune r: loading the base and scoring answer_length (target 20)"
    assert re.fullmatch(r"tune r: evaluation 1/3: η = 0 gives answer_length = [\d.]+", lines[1])
    assert re.fullmatch(r"tune r: evaluation 2/3: η = 1 gives answer_length = [\d.]+", lines[2])
    assert len(lines) == 3

    code, out, err = cli("--json", *args)
    assert code == 0, err
    res = json.loads(out)
    events = [json.loads(x) for x in err.splitlines()]
    evals = [e for e in events if e["event"] == "tune_eval"]
    assert [(e["n"], e["eta"], e["value"]) for e in evals] == [
        (i + 1, x["eta"], x["value"]) for i, x in enumerate(res["evaluations"])
    ]
