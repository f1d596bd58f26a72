"""A deliverer killed with SIGKILL while a receiver holds its request loses no event: its claim
expires and the next `registry webhook deliver --once` sends the same event (at-least-once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from registry.webhooks.delivery import Settings, deliver_due

ROOT = Path(__file__).resolve().parents[2]


def test_a_deliverer_killed_mid_delivery_loses_no_event(hooked, receiver):
    reg = hooked
    reg.approve("helpful", "reviewed", kind="vector")
    receiver.hold = True  # the first request hangs: the deliverer is mid-send when killed
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "PYTHONPATH": path, "REGISTRY_HOME": str(reg.home)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "registry.cli", "webhook", "deliver", "--once", "--timeout", "120", "--lease", "3"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert receiver.arrived.wait(120), (
            proc.stderr.read1().decode() if proc.poll() is not None else "no request"
        )
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    [d] = reg.webhook_deliveries("ci")
    assert (d["status"], d["attempts"], d["history"]) == ("pending", 0, [])  # nothing recorded as sent
    assert deliver_due(reg, Settings(timeout=10))["attempted"] == 0  # its claim still holds
    time.sleep(3.2)  # the claim expires
    summary = deliver_due(reg, Settings(timeout=10))
    assert (summary["attempted"], summary["delivered"]) == (1, 1)
    first, second = (json.loads(b) for b in receiver.bodies())
    assert first == second and first["type"] == "vector.status_changed"  # the same event, by id
    [d] = reg.webhook_deliveries("ci")
    assert (d["status"], d["attempts"]) == ("delivered", 1)
