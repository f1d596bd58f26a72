"""The webhook outbox: subscriptions, events and their deliveries, written with the change.

`emit` is called inside the transaction of the change it reports (a vector or recipe
created, a status moved, an alias moved, an output materialized), so an event exists
exactly when its change committed. The deliverer (`registry.webhooks.delivery`) sends the
pending deliveries later and records every attempt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from registry.db.models import Base, utcnow

EVENT_TYPES: dict[str, str] = {
    "vector.created": "a vector version was added (imported, trained, or from a bundle)",
    "vector.status_changed": "a vector version was approved, deprecated, or its approval revoked",
    "recipe.created": "a recipe version was added (from a file, tune, or a bundle)",
    "recipe.status_changed": "a recipe version was approved, deprecated, or its approval revoked",
    "alias.moved": "an alias (NAME@prod) was set or moved to a recipe version",
    "output.materialized": "a recipe was materialized into a folder (full weights or an adapter)",
    "evaluation.recorded": "an evaluation of a vector or recipe version was recorded (or imported)",
}
PING = "ping"  # `registry webhook test`: sent to one webhook, whatever it subscribes to
ALL = "*"


class Webhook(Base):
    """A receiver: its URL, the event types it wants, and the environment variable holding its
    secret (the secret itself is never stored)."""

    __tablename__ = "webhooks"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(default=list)  # ["*"]: every type, future ones too
    secret_env: Mapped[str | None] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def wants(self, event_type: str) -> bool:
        return ALL in self.events or event_type in self.events


class WebhookEvent(Base):
    """One change, as receivers see it; `uuid` is the id they drop duplicates by."""

    __tablename__ = "webhook_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(512))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    """One event owed to one webhook: pending until a 2xx, failed after the last retry.

    `lease_until` / `leased_by` claim it for one deliverer while it sends; a deliverer that
    dies leaves the lease to expire, and the next one sends the event again (at-least-once).
    """

    __tablename__ = "webhook_deliveries"
    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"), index=True)
    webhook_id: Mapped[int] = mapped_column(ForeignKey("webhooks.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    leased_by: Mapped[str | None] = mapped_column(String(64), default=None)
    last_status_code: Mapped[int | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    redelivery_of: Mapped[int | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    event: Mapped[WebhookEvent] = relationship()
    webhook: Mapped[Webhook] = relationship()


class DeliveryAttempt(Base):
    """One POST (or a refusal to send): what came back and how long it took."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    number: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow)
    status_code: Mapped[int | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    duration_ms: Mapped[float] = mapped_column(default=0.0)
    deliverer: Mapped[str] = mapped_column(String(64))


def emit(
    s: Session,
    event_type: str,
    subject: str,
    payload: dict[str, Any],
    actor: str,
    only: Webhook | None = None,
) -> WebhookEvent | None:
    """Queue `event_type` for every webhook that wants it, in the caller's transaction.

    Nothing is written when no webhook wants it. `only` queues it for that webhook alone
    (the ping of `registry webhook test`).
    """
    if event_type not in EVENT_TYPES and event_type != PING:
        raise ValueError(f"unknown webhook event type {event_type!r}")
    hooks = [only] if only is not None else [h for h in s.scalars(select(Webhook)) if h.wants(event_type)]
    if not hooks:
        return None
    event = WebhookEvent(
        uuid=str(uuid.uuid4()), type=event_type, subject=subject, payload=payload, actor=actor
    )
    s.add(event)
    s.flush()
    now = utcnow()
    for h in hooks:
        s.add(WebhookDelivery(event_id=event.id, webhook_id=h.id, next_attempt_at=now))
    return event


def emit_status(
    s: Session, kind: str, ref: str, before: str, after: str, reason: str | None, actor: str
) -> WebhookEvent | None:
    """Queue `vector.status_changed` / `recipe.status_changed` for a status that moved."""
    payload = {kind: ref, "from": before, "to": after, "reason": reason}
    return emit(s, f"{kind}.status_changed", ref, payload, actor)
