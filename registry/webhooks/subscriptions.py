"""`registry webhook add|list|remove|test|deliveries|redeliver`: a policy admin's acts, audited.

A webhook is a name, an http(s) URL the URL guard accepts, the event types it wants (all by
default, future ones included) and the name of the environment variable that holds its
signing secret in the deliverer's environment; the secret never enters the database.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from registry.db import outbox
from registry.db.outbox import ALL, EVENT_TYPES, DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent
from registry.errors import AlreadyExists, NotFound, RegistryError
from registry.governance.authority import require_admin
from registry.util.refs import check_name
from registry.webhooks.delivery import Settings, attempt, claim, new_token
from registry.webhooks.urlguard import check_url, shown

if TYPE_CHECKING:
    from registry.core import Core

_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def _when(x: datetime | None) -> str | None:
    return x.isoformat(timespec="seconds") + "Z" if x else None


def event_types(events: list[str] | tuple[str, ...] | None) -> list[str]:
    """`--events` as given (repeated or comma-separated; none or `all`: every type) checked."""
    names = [e.strip() for item in events or () for e in item.split(",") if e.strip()]
    if not names or "all" in names or ALL in names:
        return [ALL]
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise RegistryError(f"unknown webhook event {unknown[0]!r} (known: all, {', '.join(EVENT_TYPES)})")
    return sorted(set(names))


def _admin(core: Core, action: str, obj: str, what: str) -> None:
    require_admin(core, f"webhook.{action}", obj, what)


def add_webhook(
    core: Core, name: str, url: str, events: list[str] | None = None, secret_env: str | None = None
) -> dict[str, Any]:
    """Subscribe URL to `events`; refused unless a policy admin asks and the URL guard agrees."""
    _admin(core, "add", f"webhook:{name}", "add a webhook")
    check_name(name, "webhook name")
    types = event_types(events)
    if secret_env is not None and not _ENV.fullmatch(secret_env):
        raise RegistryError(f"--secret-env {secret_env!r} is not an environment variable name")
    check_url(url, core.policy().webhook_allow_private)

    def write() -> Webhook:
        with core.Session.begin() as s:
            if s.scalar(select(Webhook.id).where(Webhook.name == name)) is not None:
                raise AlreadyExists(f"webhook {name} exists: remove it first, or choose another name")
            hook = Webhook(name=name, url=url, events=types, secret_env=secret_env, created_by=core.actor)
            s.add(hook)
            s.flush()
            core.audit(s, "webhook.add", f"webhook:{name}",
                       {"url": shown(url), "events": types, "secret_env": secret_env})  # fmt: skip
            return hook

    return webhook_view(core.write(write), {})


def webhook_view(h: Webhook, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "name": h.name, "url": h.url, "events": list(h.events), "secret_env": h.secret_env,
        "created_by": h.created_by, "created_at": _when(h.created_at),
        **{k: counts.get(k, 0) for k in ("pending", "delivered", "failed")},
    }  # fmt: skip


def list_webhooks(core: Core) -> list[dict[str, Any]]:
    """Every webhook with how many of its deliveries are pending, delivered and failed."""
    _admin(core, "list", "webhooks", "list webhooks (their URLs may carry tokens)")
    with core.Session() as s:
        hooks = list(s.scalars(select(Webhook).order_by(Webhook.name)))
        rows = s.execute(
            select(WebhookDelivery.webhook_id, WebhookDelivery.status, func.count())
            .group_by(WebhookDelivery.webhook_id, WebhookDelivery.status)
        ).all()  # fmt: skip
    counts: dict[int, dict[str, int]] = {}
    for hook_id, status, n in rows:
        counts.setdefault(hook_id, {})[status] = n
    return [webhook_view(h, counts.get(h.id, {})) for h in hooks]


def _hook(s, name: str) -> Webhook:
    hook = s.scalar(select(Webhook).where(Webhook.name == name))
    if hook is None:
        raise NotFound("webhook", name)
    return hook


def remove_webhook(core: Core, name: str) -> dict[str, Any]:
    """Remove a webhook with its deliveries and their attempts (events no one else owes go too)."""
    _admin(core, "remove", f"webhook:{name}", "remove a webhook")

    def write() -> dict[str, Any]:
        with core.Session.begin() as s:
            hook = _hook(s, name)
            ids = select(WebhookDelivery.id).where(WebhookDelivery.webhook_id == hook.id)
            s.execute(delete(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids)))
            n = s.execute(delete(WebhookDelivery).where(WebhookDelivery.webhook_id == hook.id)).rowcount
            owed = select(WebhookDelivery.event_id)
            s.execute(delete(WebhookEvent).where(WebhookEvent.id.not_in(owed)))
            s.delete(hook)
            core.audit(s, "webhook.remove", f"webhook:{name}", {"url": shown(hook.url), "deliveries": n})
            return {"name": name, "removed": True, "deliveries_removed": n}

    return core.write(write)


def ping_webhook(core: Core, name: str, settings: Settings | None = None) -> dict[str, Any]:
    """Queue a `ping` event for this webhook alone and send it now; what the receiver said."""
    _admin(core, "test", f"webhook:{name}", "test a webhook")

    def write() -> int:
        with core.Session.begin() as s:
            hook = _hook(s, name)
            payload = {"webhook": name, "events": list(hook.events)}
            event = outbox.emit(s, outbox.PING, f"webhook:{name}", payload, core.actor, only=hook)
            core.audit(s, "webhook.test", f"webhook:{name}", {"event": event.uuid})
            s.flush()
            return s.scalar(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event.id))

    delivery_id = core.write(write)
    return _send_now(core, delivery_id, settings)


def _send_now(core: Core, delivery_id: int, settings: Settings | None) -> dict[str, Any]:
    settings, token = settings or Settings(), new_token()
    if claim(core, token, settings.lease_seconds, only=delivery_id) != [delivery_id]:
        return {"delivery": delivery_id, "status": "pending", "attempt": 0, "status_code": None,
                "error": "another deliverer holds it", "duration_ms": 0.0}  # fmt: skip
    return attempt(core, delivery_id, settings, token)


def delivery_view(d: WebhookDelivery, history: list[DeliveryAttempt]) -> dict[str, Any]:
    return {
        "id": d.id, "webhook": d.webhook.name, "event": d.event.uuid, "type": d.event.type,
        "subject": d.event.subject, "status": d.status, "attempts": d.attempts,
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "next_attempt_at": _when(d.next_attempt_at) if d.status == "pending" else None,
        "delivered_at": _when(d.delivered_at), "created_at": _when(d.created_at),
        "redelivery_of": d.redelivery_of,
        "history": [
            {"number": a.number, "at": _when(a.at), "status_code": a.status_code, "error": a.error,
             "duration_ms": a.duration_ms, "deliverer": a.deliverer}
            for a in history
        ],
    }  # fmt: skip


def list_deliveries(
    core: Core, name: str | None = None, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Deliveries newest first (of one webhook, or in one status), each with its attempts."""
    _admin(core, "deliveries", f"webhook:{name}" if name else "webhooks", "read webhook deliveries")
    if status is not None and status not in ("pending", "delivered", "failed"):
        raise RegistryError(f"--status must be pending, delivered or failed, not {status!r}")
    with core.Session() as s:
        q = select(WebhookDelivery).join(Webhook, Webhook.id == WebhookDelivery.webhook_id)
        if name is not None:
            q = q.where(WebhookDelivery.webhook_id == _hook(s, name).id)
        if status is not None:
            q = q.where(WebhookDelivery.status == status)
        rows = list(s.scalars(q.order_by(WebhookDelivery.id.desc()).limit(limit)))
        history: dict[int, list[DeliveryAttempt]] = {}
        ids = [d.id for d in rows]
        for a in s.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(ids))
                           .order_by(DeliveryAttempt.id)):  # fmt: skip
            history.setdefault(a.delivery_id, []).append(a)
        return [delivery_view(d, history.get(d.id, [])) for d in rows]


def redeliver(core: Core, delivery_id: int, settings: Settings | None = None) -> dict[str, Any]:
    """Send a delivery's event again (same event id) as a new delivery, now."""
    _admin(core, "redeliver", f"delivery:{delivery_id}", "redeliver a webhook event")

    def write() -> int:
        with core.Session.begin() as s:
            d = s.get(WebhookDelivery, delivery_id)
            if d is None:
                raise NotFound("webhook delivery", str(delivery_id))
            again = WebhookDelivery(event_id=d.event_id, webhook_id=d.webhook_id, redelivery_of=d.id)
            s.add(again)
            s.flush()
            core.audit(s, "webhook.redeliver", f"webhook:{d.webhook.name}",
                       {"delivery": d.id, "new_delivery": again.id, "event": d.event.uuid})  # fmt: skip
            return again.id

    return _send_now(core, core.write(write), settings)
