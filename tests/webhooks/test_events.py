"""Webhook events (issue 33), on SQLite and PostgreSQL: every change reaches a receiver on
127.0.0.1 once, signed; a failing receiver gets retries; a rolled-back change emits nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from registry.db import engine as dbmod
from registry.db import outbox
from registry.db.outbox import EVENT_TYPES, DeliveryAttempt, WebhookDelivery, WebhookEvent
from registry.governance.policy import set_policy
from registry.webhooks.delivery import Settings, claim, deliver_due, start_thread
from tests.records.test_evaluations import fields as evaluation_fields
from tests.webhooks.conftest import SECRET

MIX = {"name": "mix", "base": "tiny", "dtype": "float32", "terms": [{"vector": "fresh", "weight": 1.0}]}


def _events(receiver) -> list[dict]:
    return [json.loads(b) for b in receiver.bodies()]


def _count(reg, model) -> int:
    with reg.Session() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_each_event_type_reaches_the_receiver_once_with_a_valid_signature(hooked, receiver, models, tmp_path):
    reg = hooked
    reg.import_vector("fresh", "tiny", models["minus"])  # vector.created
    reg.approve("fresh", "reviewed", kind="vector")  # vector.status_changed
    reg.add_recipe(MIX)  # recipe.created
    reg.approve("mix@v1", "evals passed")  # recipe.status_changed
    reg.set_alias("mix@v1", "prod")  # alias.moved
    m = reg.materialize("mix@prod", tmp_path / "out")  # output.materialized
    rec = reg.record_evaluation(**evaluation_fields(reg, "fresh"))  # evaluation.recorded
    assert receiver.got == []  # nothing is sent inside the change's transaction

    summary = deliver_due(reg, Settings(timeout=10))
    n = len(EVENT_TYPES)
    assert (summary["attempted"], summary["delivered"], summary["pending"]) == (n, n, 0)
    events = _events(receiver)
    assert sorted(e["type"] for e in events) == sorted(EVENT_TYPES)
    assert len({e["id"] for e in events}) == n
    for got, event in zip(receiver.got, events, strict=True):
        expected = "sha256=" + hmac.new(SECRET.encode(), got.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(got.headers["X-Hub-Signature-256"], expected)
        assert got.headers["X-Registry-Event"] == event["type"]
        assert got.headers["X-Registry-Event-Id"] == event["id"]
        assert got.headers["Content-Type"] == "application/json" and got.path == "/hook"
        assert event["registry"] == reg.id and event["actor"] == "tester"
        assert event["timestamp"].endswith("Z")
    by_type = {e["type"]: e["payload"] for e in events}
    assert by_type["vector.created"]["vector"] == "fresh@v1" and by_type["vector.created"]["base"] == "tiny"
    assert by_type["vector.status_changed"] == {
        "vector": "fresh@v1", "from": "draft", "to": "approved", "reason": "reviewed"
    }  # fmt: skip
    assert by_type["recipe.created"]["terms"] == [{"vector": "fresh@v1", "weight": 1.0}]
    assert by_type["recipe.status_changed"]["to"] == "approved"
    assert by_type["alias.moved"] == {
        "alias": "mix@prod", "recipe": "mix", "status": "approved", "to": "mix@v1", "from": None, "forced": False
    }  # fmt: skip
    out = by_type["output.materialized"]
    assert (out["recipe"], out["output_digest"], out["form"]) == ("mix@v1", m.output_digest, "full")
    evaluated = by_type["evaluation.recorded"]
    assert (evaluated["vector"], evaluated["evaluation"], evaluated["digest"]) == (
        "fresh@v1",
        rec.id,
        rec.digest,
    )
    assert evaluated["metrics"] == {"answer_length": 11.0, "ppl_drift": 2.5}

    again = deliver_due(reg, Settings(timeout=10))
    assert again["attempted"] == 0 and len(receiver.got) == n  # delivered means never sent again
    with reg.Session() as s:
        assert set(s.scalars(select(WebhookDelivery.status))) == {"delivered"}
        assert [a.status_code for a in s.scalars(select(DeliveryAttempt))] == [200] * n


def test_a_receiver_answering_500_gets_retries_then_the_event(hooked, receiver):
    reg = hooked
    receiver.answers = [500, 500]
    reg.approve("helpful", "reviewed", kind="vector")
    fast = Settings(timeout=10, backoff=0)
    statuses = [deliver_due(reg, fast)["attempts"][0]["status"] for _ in range(3)]
    assert statuses == ["pending", "pending", "delivered"]
    assert len(set(receiver.bodies())) == 1 and len(receiver.got) == 3  # the same bytes each time
    [d] = reg.webhook_deliveries("ci")
    assert (d["status"], d["attempts"], d["type"]) == ("delivered", 3, "vector.status_changed")
    assert [(h["status_code"], h["error"]) for h in d["history"]] == [
        (500, "HTTP 500"),
        (500, "HTTP 500"),
        (200, None),
    ]
    assert all(h["duration_ms"] > 0 for h in d["history"])

    # backoff: after a failure the delivery waits; the last allowed failure gives up
    receiver.answers = [503] * 2
    reg.approve("harmless", "reviewed", kind="vector")
    slow = Settings(timeout=10, backoff=60, max_attempts=2)
    t0 = datetime.now(UTC).replace(tzinfo=None)
    assert deliver_due(reg, slow)["pending"] == 1
    [d] = reg.webhook_deliveries("ci", status="pending")
    waits = (datetime.fromisoformat(d["next_attempt_at"].removesuffix("Z")) - t0).total_seconds()
    assert 55 <= waits <= 65
    assert deliver_due(reg, slow)["attempted"] == 0  # not due yet
    with reg.Session.begin() as s:  # time passes
        s.get(WebhookDelivery, d["id"]).next_attempt_at = s.get(WebhookDelivery, d["id"]).created_at
    assert deliver_due(reg, slow)["failed"] == 1
    [failed] = reg.webhook_deliveries("ci", status="failed")
    assert failed["attempts"] == 2 and failed["last_status_code"] == 503

    redone = reg.redeliver(failed["id"])  # the same event, sent now as a new delivery
    assert redone["status"] == "delivered" and redone["event"] == failed["event"]
    assert json.loads(receiver.got[-1].body)["id"] == failed["event"]


def test_a_change_that_rolls_back_emits_nothing(hooked, monkeypatch):
    reg = hooked
    real = outbox.emit

    def emit_then_fail(*args, **kwargs):
        event = real(*args, **kwargs)
        assert event is not None  # the event row was written in the change's transaction...
        raise RuntimeError("the change fails after its event was written")

    monkeypatch.setattr(outbox, "emit", emit_then_fail)
    with pytest.raises(RuntimeError, match="after its event"):
        reg.approve("helpful", "reviewed", kind="vector")
    with pytest.raises(RuntimeError, match="after its event"):
        reg.add_recipe({**MIX, "terms": [{"vector": "helpful", "weight": 1.0}]})
    assert _count(reg, WebhookEvent) == 0 and _count(reg, WebhookDelivery) == 0  # ...and went with it
    assert reg.vector("helpful").status == "draft" and reg.recipes() == []
    monkeypatch.setattr(outbox, "emit", real)
    reg.approve("helpful", "reviewed", kind="vector")
    assert _count(reg, WebhookEvent) == 1 and _count(reg, WebhookDelivery) == 1


def test_no_webhook_no_rows_and_events_only_where_subscribed(loaded, receiver):
    reg = loaded
    reg.approve("helpful", "reviewed", kind="vector")
    assert _count(reg, WebhookEvent) == 0  # no subscriber: the outbox stays empty
    set_policy(reg, "webhook_allow_private", True)
    reg.add_webhook("aliases", receiver.url, events=["alias.moved"])
    reg.add_webhook("lifecycle", receiver.url, events=["vector.status_changed,recipe.status_changed"])
    reg.approve("harmless", "reviewed", kind="vector")
    with reg.Session() as s:
        assert [d.webhook.name for d in s.scalars(select(WebhookDelivery))] == ["lifecycle"]
    deliver_due(reg)
    assert [r.headers.get("X-Hub-Signature-256") for r in receiver.got] == [None]  # no secret: unsigned


def test_two_deliverers_never_hold_one_delivery(hooked):
    reg = hooked
    reg.approve("helpful", "reviewed", kind="vector")
    reg.approve("harmless", "reviewed", kind="vector")
    first = claim(reg, "first", lease=60)
    assert len(first) == 2 and claim(reg, "second", lease=60) == []
    with reg.Session() as s:
        assert set(s.scalars(select(WebhookDelivery.leased_by))) == {"first"}


def test_serve_delivers_from_a_background_thread(hooked, receiver):
    stop = start_thread(hooked, Settings(timeout=10), interval=0.1)
    try:
        hooked.approve("helpful", "reviewed", kind="vector")
        deadline = time.time() + 30
        while not receiver.got and time.time() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
    assert [e["type"] for e in _events(receiver)] == ["vector.status_changed"]


def test_missing_secret_is_an_attempt_that_sends_nothing(hooked, receiver, monkeypatch):
    monkeypatch.delenv("HOOK_SECRET")
    hooked.approve("helpful", "reviewed", kind="vector")
    [a] = deliver_due(hooked, Settings(backoff=0))["attempts"]
    assert a["status"] == "pending" and "HOOK_SECRET" in a["error"] and receiver.got == []


def test_downgrade_refuses_while_deliveries_are_pending(hooked):
    hooked.approve("helpful", "reviewed", kind="vector")
    with pytest.raises(RuntimeError, match="pending deliveries"):
        dbmod.downgrade(hooked.engine, "-1")
    assert _count(hooked, WebhookDelivery) == 1
    assert deliver_due(hooked)["delivered"] == 1
    dbmod.downgrade(hooked.engine, "-1")
    dbmod.upgrade(hooked.engine)
    assert _count(hooked, WebhookDelivery) == 0
