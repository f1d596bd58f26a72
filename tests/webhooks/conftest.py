"""Webhook tests: a receiver on 127.0.0.1, and registries whose policy lets webhooks reach it."""

from __future__ import annotations

import pytest

from registry.governance.policy import set_policy
from tests.webhooks.receiver import Receiver

SECRET = "It's a Secret to Everybody"


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def hooked(loaded, receiver, monkeypatch):
    """`loaded` with private receivers allowed and webhook `ci` (every event, signed) at `receiver`."""
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    set_policy(loaded, "webhook_allow_private", True)
    loaded.add_webhook("ci", receiver.url, secret_env="HOOK_SECRET")
    return loaded
