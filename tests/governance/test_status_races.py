"""Status changes race (issue 24.4): approve and deprecate at once, on SQLite and PostgreSQL.

A pause point holds one writer between its checks and its write while the other runs to
the end; the held writer must then see the new status (compare-and-set), so the final
state is one a sequence of the two could give, and every audit row's `from=` is true.
"""

from __future__ import annotations

from registry.errors import GovernanceRefused, InvalidTransition
from tests.threads import in_thread

READ = "lifecycle:status-read"  # inside the write transaction, status read, not yet written
CHECKED = "lifecycle:before-write"  # after the checks (and signing), before the transaction


def moves(reg, ref: str) -> list[tuple[str, str | None]]:
    return [
        (e.action, e.details.get("from"))
        for e in reg.log(ref)
        if e.action.endswith((".approved", ".deprecated"))
    ]


def test_deprecate_wins_over_a_held_approve(loaded, home, hold):
    from registry import Registry

    other = Registry.open(home)
    reached, release = hold(READ)
    t, result = in_thread(lambda: loaded.approve("helpful", "looks fine", kind="vector"))
    assert reached.wait(120)
    other.deprecate("helpful", "recalled", kind="vector")
    release.set()
    t.join(120)
    assert isinstance(result.get("error"), InvalidTransition)
    assert str(result["error"]) == "vector helpful@v1 is deprecated; it cannot become approved"
    assert other.vector("helpful@v1").status == "deprecated"
    assert moves(other, "helpful@v1") == [("vector.deprecated", "draft")]


def test_held_deprecate_records_the_approval_it_replaced(loaded, home, hold):
    from registry import Registry

    other = Registry.open(home)
    reached, release = hold(READ)
    t, result = in_thread(lambda: loaded.deprecate("helpful", "recalled", kind="vector"))
    assert reached.wait(120)
    other.approve("helpful", "looks fine", kind="vector")
    release.set()
    t.join(120)
    assert "error" not in result, result
    assert other.vector("helpful@v1").status == "deprecated"
    assert moves(other, "helpful@v1") == [("vector.approved", "draft"), ("vector.deprecated", "approved")]


def test_recipe_approval_rechecks_its_vectors_when_it_writes(loaded, home, hold):
    """Signing took 0.66 s between the check and the write; a vector deprecated in that
    gap must stop the approval."""
    from registry import Registry

    for v in ("helpful", "harmless"):
        loaded.approve(v, "ok", kind="vector")
    terms = [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": -0.5}]
    loaded.add_recipe({"name": "mix", "base": "tiny", "terms": terms})
    other = Registry.open(home)
    reached, release = hold(CHECKED)
    t, result = in_thread(lambda: loaded.approve("mix@v1", "evals passed"))
    assert reached.wait(120)
    other.deprecate("harmless", "withdrawn", kind="vector")
    release.set()
    t.join(120)
    assert isinstance(result.get("error"), GovernanceRefused)
    assert "uses vectors that are not approved: harmless@v1 (deprecated)" in str(result["error"])
    assert other.recipe("mix@v1").status == "draft"
    assert [e.action for e in other.log("mix@v1")][-1] == "refused.recipe.approved"
