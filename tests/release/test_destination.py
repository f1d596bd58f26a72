"""Two materializations to one --out (issue 24.11): both used to exit 0, the folder holding
the second recipe while lineage named the first. Now one wins; the other is refused."""

from __future__ import annotations

import threading

import pytest

from registry.errors import OutputExists
from registry.release.destination import claim, lock_path
from registry.util.faults import set_pause


@pytest.fixture
def two(sqlite_reg, models):
    sqlite_reg.import_vector("helpful", "tiny", models["plus"])
    for name, w in (("a", 1.0), ("b", -1.0)):
        sqlite_reg.add_recipe({"name": name, "base": "tiny", "terms": [{"vector": "helpful", "weight": w}]})
    return sqlite_reg


def test_second_writer_is_refused_while_the_first_holds_the_folder(two, tmp_path):
    out = tmp_path / "out"
    reached, release = threading.Event(), threading.Event()

    def hold():  # the first writer waits after its rename, before its row is recorded
        if threading.current_thread() is not threading.main_thread():
            reached.set()
            assert release.wait(120)

    set_pause("materialize:after-rename", hold)
    t = threading.Thread(target=lambda: two.materialize("a", out))
    t.start()
    try:
        assert reached.wait(120)
        with pytest.raises(OutputExists, match="is being written by another materialize right now"):
            two.materialize("b", out, force=True)
    finally:
        release.set()
        t.join(120)
        set_pause("materialize:after-rename", None)
    with pytest.raises(OutputExists, match="exists and is not empty"):
        two.materialize("b", out)  # after it: the folder is taken
    rows = [(m.recipe.ref, m.out_path) for m in two.materializations()]
    assert rows == [("a@v1", str(out))]
    assert not lock_path(out).exists()


def test_folder_appearing_during_the_write_is_kept(two, tmp_path):
    """The check before the merge is repeated at the rename: a folder that appeared in
    between (written by anything) is neither replaced nor mixed with."""
    out = tmp_path / "out"

    def appear():
        out.mkdir()
        (out / "theirs.txt").write_text("someone else's")

    set_pause("materialize:before-rename", appear)
    try:
        with pytest.raises(OutputExists, match="exists and is not empty"):
            two.materialize("a", out)
    finally:
        set_pause("materialize:before-rename", None)
    assert [p.name for p in out.iterdir()] == ["theirs.txt"]
    assert two.materializations() == [] and not list(tmp_path.glob(".out*"))


def test_claim_is_exclusive_between_processes(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "o"
    code = (
        "import sys; from pathlib import Path; from registry.release.destination import claim\n"
        "try:\n    with claim(Path(sys.argv[1])): pass\nexcept Exception as e: print(e); sys.exit(3)"
    )
    with claim(out):
        held = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert held.returncode == 3 and "being written by another materialize" in held.stdout
    free = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True)
    assert free.returncode == 0 and not lock_path(out).exists()
