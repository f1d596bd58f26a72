"""WorkProgress: what materialize and import report off a terminal, as lines or JSON lines."""

from __future__ import annotations

import io
import json

from registry.training.progress import WorkProgress, reporting


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_off_a_terminal_first_and_last_lines_and_tenths_once_the_interval_passed():
    out = io.StringIO()
    with reporting(stream=out):
        p = WorkProgress("import helpful", 21, "tensors", interval=0.0)
        for _ in range(21):
            p.advance()
        p.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("import helpful: 1/21 tensors (5%), ")
    assert lines[-1].startswith("import helpful: 21/21 tensors (100%), ")
    # one line per tenth reached (interval 0): 1, 3, 5, … tensors, each tenth once
    assert [int(x.split(": ")[1].split("/")[0]) for x in lines] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21]


def test_a_quick_job_writes_only_its_start_and_end():
    out = io.StringIO()
    with reporting(stream=out):
        p = WorkProgress("materialize r@v1", 4_000_000, "bytes")  # default interval: 2 s
        for _ in range(8):
            p.advance(500_000)
        p.close()
    assert [x.split(",")[0] for x in out.getvalue().splitlines()] == [
        "materialize r@v1: 0.5/4.0 MB (12%)",
        "materialize r@v1: 4.0/4.0 MB (100%)",
    ]


def test_json_lines_under_json_and_a_short_ending_is_reported():
    out = io.StringIO()
    with reporting(json=True, stream=out):
        p = WorkProgress("materialize r@v1", 1000, "bytes")
        p.advance(400)
        p.advance(500)  # the estimate was high: the job ends at 90%
        p.close()
    recs = [json.loads(x) for x in out.getvalue().splitlines()]
    assert [(r["event"], r["done"], r["total"], r["unit"]) for r in recs] == [
        ("progress", 400, 1000, "bytes"),
        ("progress", 900, 1000, "bytes"),
    ]
    assert all(r["label"] == "materialize r@v1" and r["elapsed_s"] >= 0 for r in recs)


def test_a_terminal_gets_a_bar_not_lines():
    out = Terminal()
    with reporting(stream=out):
        p = WorkProgress("import helpful", 3, "tensors", interval=0.0)
        for _ in range(3):
            p.advance()
        p.close()
    text = out.getvalue()
    assert "\rimport helpful:" in text and " tensors/s]" in text  # tqdm redraws one line
    assert "(100%)" not in text and "\n" not in text  # no log lines
