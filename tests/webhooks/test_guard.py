"""Who may manage webhooks (policy admins), and where webhooks may post (the URL guard)."""

from __future__ import annotations

import ipaddress
import json
import socket

import pytest
from sqlalchemy import func, select

from registry.db.models import AuditEvent
from registry.db.outbox import Webhook, WebhookDelivery
from registry.errors import GovernanceRefused, UrlRefused
from registry.governance.policy import set_policy
from registry.webhooks.delivery import deliver_due
from registry.webhooks.urlguard import check_url, why_refused


def _resolving(monkeypatch, names: dict[str, str]) -> None:
    """DNS as a test wants it: `names` maps a host to the one address it resolves to."""
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in names:
            family = socket.AF_INET6 if ":" in names[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.mark.parametrize(
    ("address", "private_ok", "refused_as"),
    [
        ("169.254.169.254", True, "a cloud metadata address"),
        ("fd00:ec2::254", True, "a cloud metadata address"),
        ("::ffff:169.254.169.254", True, "a cloud metadata address"),
        ("169.254.10.1", True, "link-local"),
        ("fe80::1", True, "link-local"),
        ("0.0.0.0", True, "unspecified"),
        ("::", True, "unspecified"),
        ("224.0.0.1", True, "multicast"),
        ("127.0.0.1", False, "loopback"),
        ("::1", False, "loopback"),
        ("10.1.2.3", False, "private"),
        ("192.168.1.1", False, "private"),
        ("172.16.0.1", False, "private"),
        ("100.64.0.1", False, "private"),
        ("fd12::1", False, "private"),
        ("127.0.0.1", True, None),
        ("10.1.2.3", True, None),
        ("93.184.215.14", False, None),
        ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", False, None),
    ],
)
def test_address_classes(address, private_ok, refused_as):
    assert why_refused(ipaddress.ip_address(address), private_ok) == refused_as


def test_urls_on_refused_ranges_are_refused(monkeypatch):
    _resolving(monkeypatch, {"metadata.attacker.test": "169.254.169.254", "intranet.test": "10.0.0.7"})
    refusals = {
        "http://169.254.169.254/latest/meta-data/": "169.254.169.254, a cloud metadata address",
        "http://[fd00:ec2::254]/": "fd00:ec2::254, a cloud metadata address",
        "https://metadata.attacker.test/hook": "metadata.attacker.test resolves to 169.254.169.254",
        "http://intranet.test/hook": "10.0.0.7, private; refused (a policy admin may allow",
        "http://127.0.0.1:9/hook": "127.0.0.1, loopback",
        "ftp://example.com/hook": "only http and https",
        "file:///etc/passwd": "only http and https",
        "http://user:pw@example.com/": "no credentials in the URL",
        "http://:80/": "names no host",
        "http://no-such-host.invalid/": "cannot resolve no-such-host.invalid",
    }
    for url, words in refusals.items():
        with pytest.raises(UrlRefused) as e:
            check_url(url, allow_private=False)
        assert words in str(e.value) and "\n" not in str(e.value), (url, str(e.value))
    with pytest.raises(UrlRefused, match="cloud metadata"):
        check_url("https://metadata.attacker.test/", allow_private=True)  # no policy opens it
    t = check_url("http://intranet.test:8080/a?b=1", allow_private=True)
    assert (t.host, t.port, t.address, t.path) == ("intranet.test", 8080, "10.0.0.7", "/a?b=1")


def test_add_refuses_a_url_on_a_refused_range_and_writes_nothing(reg, monkeypatch):
    _resolving(monkeypatch, {"hooks.attacker.test": "169.254.169.254"})
    for url in ("http://169.254.169.254/", "http://hooks.attacker.test/", "http://127.0.0.1:9/"):
        with pytest.raises(UrlRefused):
            reg.add_webhook("ci", url)
    set_policy(reg, "webhook_allow_private", True)
    with pytest.raises(UrlRefused, match="cloud metadata"):
        reg.add_webhook("ci", "http://hooks.attacker.test/")
    assert reg.webhooks() == []
    reg.add_webhook("ci", "http://127.0.0.1:9/")  # allowed by the policy now
    assert [w["name"] for w in reg.webhooks()] == ["ci"]


def test_dns_that_changes_after_add_is_checked_again_at_delivery(loaded, receiver, monkeypatch):
    set_policy(loaded, "webhook_allow_private", True)
    port = receiver.server.server_address[1]
    _resolving(monkeypatch, {"hooks.example.test": "127.0.0.1"})
    loaded.add_webhook("ci", f"http://hooks.example.test:{port}/hook")
    loaded.approve("helpful", "reviewed", kind="vector")
    _resolving(monkeypatch, {"hooks.example.test": "169.254.169.254"})  # rebinding
    [a] = deliver_due(loaded)["attempts"]
    assert a["status"] == "pending" and "169.254.169.254, a cloud metadata address" in a["error"]
    assert receiver.got == []
    _resolving(monkeypatch, {"hooks.example.test": "127.0.0.1"})
    [d] = loaded.webhook_deliveries("ci")
    with loaded.Session.begin() as s:  # the retry is due
        s.get(WebhookDelivery, d["id"]).next_attempt_at = s.get(WebhookDelivery, d["id"]).created_at
    [a] = deliver_due(loaded)["attempts"]
    assert a["status"] == "delivered"
    [got] = receiver.got
    assert got.headers["Host"] == f"hooks.example.test:{port}"  # connected to the address checked


def test_a_non_admin_cannot_add_or_manage_webhooks(reg, monkeypatch, cli):
    set_policy(reg, "webhook_allow_private", True)
    reg.add_webhook("ci", "http://127.0.0.1:9/hook")
    bob = type(reg).open(reg.home, actor="bob")
    acts = {
        "add": lambda: bob.add_webhook("evil", "http://127.0.0.1:9/x"),
        "list": bob.webhooks,
        "remove": lambda: bob.remove_webhook("ci"),
        "test": lambda: bob.ping_webhook("ci"),
        "deliveries": bob.webhook_deliveries,
        "redeliver": lambda: bob.redeliver(1),
    }
    for action, act in acts.items():
        with pytest.raises(GovernanceRefused, match="only a policy admin \\(tester\\) may"):
            act()
        with reg.Session() as s:
            last = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
        assert (last.action, last.actor) == (f"refused.webhook.{action}", "bob"), action
    bob.close()
    monkeypatch.setenv("REGISTRY_ACTOR", "bob")
    code, out, err = cli("webhook", "add", "evil", "--url", "http://127.0.0.1:9/x")
    assert (
        code != 0
        and out == ""
        and err.strip().splitlines() == ["Error: only a policy admin (tester) may add a webhook, not bob"]
    )
    with reg.Session() as s:
        assert list(s.scalars(select(Webhook.name))) == ["ci"]


def test_cli_round_trip(reg, cli, receiver, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", "s")
    set_policy(reg, "webhook_allow_private", True)
    code, out, err = cli("webhook", "add", "ci", "--url", receiver.url, "--events", "alias.moved,ping",
                         "--secret-env", "HOOK_SECRET")  # fmt: skip
    assert code != 0 and "unknown webhook event 'ping'" in err
    code, out, err = cli("--json", "webhook", "add", "ci", "--url", receiver.url, "--events", "alias.moved",
                         "--events", "recipe.created", "--secret-env", "HOOK_SECRET")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["events"] == ["alias.moved", "recipe.created"]
    code, out, err = cli("webhook", "add", "ci", "--url", receiver.url)
    assert code != 0 and "webhook ci exists" in err
    code, out, err = cli("webhook", "test", "ci")
    assert code == 0 and out.startswith("ping to webhook ci delivered (HTTP 200"), err
    assert json.loads(receiver.got[0].body)["type"] == "ping"
    receiver.answers = [500]
    code, out, err = cli("webhook", "test", "ci")
    assert code == 1 and "not delivered (HTTP 500" in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("--json", "webhook", "deliveries", "ci")
    rows = json.loads(out)
    assert [(r["status"], r["last_status_code"]) for r in rows] == [("pending", 500), ("delivered", 200)]
    code, out, err = cli("--json", "webhook", "redeliver", rows[0]["id"])
    assert code == 0 and json.loads(out)["status"] == "delivered", err
    code, out, err = cli("--json", "webhook", "list")
    [hook] = json.loads(out)
    assert (hook["pending"], hook["delivered"]) == (1, 2)
    code, out, err = cli("--json", "webhook", "remove", "ci")
    assert json.loads(out) == {"name": "ci", "removed": True, "deliveries_removed": 3}
    code, out, err = cli("webhook", "remove", "ci")
    assert code != 0 and err.strip() == "Error: webhook not found: ci"
    with reg.Session() as s:
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.action.startswith("webhook."))))
        assert actions == [
            "webhook.add",
            "webhook.test",
            "webhook.test",
            "webhook.redeliver",
            "webhook.remove",
        ]
        assert s.scalar(select(func.count()).select_from(Webhook)) == 0
