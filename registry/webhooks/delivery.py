"""The deliverer: claims pending deliveries, POSTs each signed event, records every attempt.

At-least-once: a delivery is claimed with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
a compare-and-set of the lease on both backends), sent outside any transaction, and marked
delivered only after a 2xx; a deliverer killed mid-send leaves its lease to expire and the
next pass sends the event again, so receivers drop duplicates by the event id. A failure is
retried with exponential backoff until `max_attempts`. The signature follows GitHub's
scheme: `X-Hub-Signature-256: sha256=HMAC-SHA256(secret, body)`.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import os
import socket
import ssl
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update

from registry.db.models import utcnow
from registry.db.outbox import DeliveryAttempt, Webhook, WebhookDelivery, WebhookEvent
from registry.errors import RegistryError, UrlRefused
from registry.version import VERSION
from registry.webhooks.urlguard import Target, check_url

if TYPE_CHECKING:
    from registry.core import Core

SIGNATURE_HEADER = "X-Hub-Signature-256"
MAX_BACKOFF = 3600.0


@dataclass(frozen=True)
class Settings:
    """How a deliverer sends: per-request timeout, lease, retries and their backoff (seconds)."""

    timeout: float = 10.0
    lease: float | None = None  # default: timeout + 30
    max_attempts: int = 8
    backoff: float = 10.0  # the delay after the first failure; doubled after each one

    def __post_init__(self) -> None:
        if not self.timeout > 0 or (self.lease is not None and not self.lease > 0):
            raise RegistryError("webhook deliverer: --timeout and --lease must be positive")
        if self.max_attempts < 1 or self.backoff < 0:
            raise RegistryError("webhook deliverer: --max-attempts must be ≥ 1 and --backoff ≥ 0")

    @property
    def lease_seconds(self) -> float:
        return self.lease if self.lease is not None else self.timeout + 30

    def delay(self, failures: int) -> float:
        return min(self.backoff * 2 ** (failures - 1), MAX_BACKOFF)


def sign(secret: str | bytes, body: bytes) -> str:
    """The `X-Hub-Signature-256` value of `body`: `sha256=` and the HMAC-SHA256 hex digest."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def event_body(core: Core, event: WebhookEvent) -> bytes:
    """The JSON document POSTed for `event`: the same bytes on every attempt."""
    doc = {
        "id": event.uuid,
        "type": event.type,
        "timestamp": event.created_at.isoformat(timespec="milliseconds") + "Z",
        "registry": core.id,
        "actor": event.actor,
        "subject": event.subject,
        "payload": event.payload,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()


def headers(event: WebhookEvent, delivery_id: int, body: bytes, secret: str | None) -> dict[str, str]:
    out = {
        "Content-Type": "application/json",
        "User-Agent": f"preference-registry-webhook/{VERSION}",
        "X-Registry-Event": event.type,
        "X-Registry-Event-Id": event.uuid,
        "X-Registry-Delivery": str(delivery_id),
    }
    if secret is not None:
        out[SIGNATURE_HEADER] = sign(secret, body)
    return out


class _Pinned(http.client.HTTPConnection):
    """Connects to the address the URL guard judged, never to a second resolution of the host."""

    def __init__(self, target: Target, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self.address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self.address, self.port), self.timeout)


class _PinnedTLS(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float):
        self.tls = ssl.create_default_context()
        super().__init__(target.host, target.port, timeout=timeout, context=self.tls)
        self.address = target.address

    def connect(self) -> None:
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self.tls.wrap_socket(sock, server_hostname=self.host)


def post(target: Target, body: bytes, hdrs: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """(status code, error); no redirect is followed (it could lead past the URL guard)."""
    conn = (_PinnedTLS if target.scheme == "https" else _Pinned)(target, timeout)
    try:
        conn.request("POST", target.path, body=body, headers=hdrs)
        response = conn.getresponse()
        response.read(65536)
        code = response.status
    except TimeoutError:
        return None, f"no answer within {timeout:g} s"
    except (OSError, http.client.HTTPException) as e:
        return None, f"{type(e).__name__}: {e}"[:500]
    finally:
        conn.close()
    return code, None if 200 <= code < 300 else f"HTTP {code}"


def _claimable(now: datetime):
    return (
        (WebhookDelivery.status == "pending")
        & (WebhookDelivery.next_attempt_at <= now)
        & or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
    )


def claim(
    core: Core,
    token: str,
    lease: float,
    limit: int = 20,
    only: int | None = None,
    skip: set[int] | None = None,
) -> list[int]:
    """Lease up to `limit` due deliveries (or delivery `only`; none in `skip`) to `token`; their ids."""

    def write() -> list[int]:
        now = utcnow()
        with core.Session.begin() as s:
            q = select(WebhookDelivery.id).where(_claimable(now)).order_by(WebhookDelivery.id).limit(limit)
            if only is not None:
                q = q.where(WebhookDelivery.id == only)
            if skip:
                q = q.where(WebhookDelivery.id.not_in(skip))
            if core.engine.url.get_backend_name() == "postgresql":
                q = q.with_for_update(skip_locked=True)  # rows another deliverer holds are skipped
            got = []
            for i in list(s.scalars(q)):
                leased = s.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == i, _claimable(now))
                    .values(lease_until=now + timedelta(seconds=lease), leased_by=token)
                    .execution_options(synchronize_session=False)
                ).rowcount
                if leased == 1:
                    got.append(i)
            return got

    return core.write(write)


def attempt(core: Core, delivery_id: int, settings: Settings, token: str) -> dict[str, Any]:
    """Send one claimed delivery once and record the attempt; returns what happened."""
    with core.Session() as s:
        d = s.get(WebhookDelivery, delivery_id)
        if d is None:  # its webhook was removed meanwhile
            return {"delivery": delivery_id, "status": "removed", "attempt": 0, "status_code": None,
                    "error": "the webhook was removed", "duration_ms": 0.0}  # fmt: skip
        event, hook = s.get(WebhookEvent, d.event_id), s.get(Webhook, d.webhook_id)
    body = event_body(core, event)
    t0 = time.perf_counter()
    code, error = None, None
    secret = os.environ.get(hook.secret_env) if hook.secret_env else None
    if hook.secret_env and secret is None:
        error = f"environment variable {hook.secret_env} (the webhook's secret) is not set for the deliverer"
    else:
        try:
            target = check_url(hook.url, core.policy().webhook_allow_private)
        except UrlRefused as e:
            error = str(e)
        else:
            code, error = post(target, body, headers(event, delivery_id, body, secret), settings.timeout)
    ms = (time.perf_counter() - t0) * 1000
    return record(core, delivery_id, code, error, ms, settings, token) | {
        "webhook": hook.name,
        "event": event.uuid,
        "type": event.type,
    }


def record(
    core: Core,
    delivery_id: int,
    code: int | None,
    error: str | None,
    ms: float,
    settings: Settings,
    token: str,
) -> dict[str, Any]:
    def write() -> dict[str, Any]:
        with core.Session.begin() as s:
            d = s.get(WebhookDelivery, delivery_id, with_for_update=True)
            if d is None:  # the webhook was removed meanwhile
                return {"delivery": delivery_id, "status": "removed", "attempt": 0, "status_code": code,
                        "error": error, "duration_ms": round(ms, 3)}  # fmt: skip
            number = d.attempts + 1
            s.add(DeliveryAttempt(delivery_id=d.id, number=number, status_code=code, error=error,
                                  duration_ms=round(ms, 3), deliverer=token))  # fmt: skip
            d.attempts, d.last_status_code, d.last_error = number, code, error
            if d.leased_by == token:
                d.lease_until, d.leased_by = None, None
            if d.status == "pending":
                if error is None:
                    d.status, d.delivered_at = "delivered", utcnow()
                elif number >= settings.max_attempts:
                    d.status = "failed"
                else:
                    d.next_attempt_at = utcnow() + timedelta(seconds=settings.delay(number))
            return {"delivery": d.id, "status": d.status, "attempt": number, "status_code": code,
                    "error": error, "duration_ms": round(ms, 3)}  # fmt: skip

    return core.write(write)


def new_token() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def deliver_due(core: Core, settings: Settings | None = None, token: str | None = None) -> dict[str, Any]:
    """One pass: every delivery due now is attempted once (`registry webhook deliver --once`)."""
    settings, token = settings or Settings(), token or new_token()
    done: list[dict[str, Any]] = []
    seen: set[int] = set()
    while True:
        batch = claim(core, token, settings.lease_seconds, skip=seen)
        if not batch:
            break
        for i in batch:
            seen.add(i)
            done.append(attempt(core, i, settings, token))
    counts = {k: sum(1 for d in done if d["status"] == k) for k in ("delivered", "pending", "failed")}
    return {"attempted": len(done), **counts, "attempts": done, "settings": asdict(settings)}


def run_forever(core: Core, settings: Settings, stop: threading.Event, interval: float = 2.0) -> None:
    """Deliver until `stop` is set: a pass, then a pause of `interval` seconds."""
    token = new_token()
    while not stop.is_set():
        try:
            deliver_due(core, settings, token)
        except Exception as e:  # why: a database hiccup must not end the serve process's deliverer
            print(f"webhook deliverer: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
        stop.wait(interval)


def start_thread(core: Core, settings: Settings | None = None, interval: float = 2.0) -> threading.Event:
    """Run the deliverer in a daemon thread (inside `registry serve`); set the event to stop it."""
    stop = threading.Event()
    t = threading.Thread(
        target=run_forever,
        args=(core, settings or Settings(), stop, interval),
        name="webhook-deliverer",
        daemon=True,
    )
    t.start()
    return stop
