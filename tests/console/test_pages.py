"""The console's pages: sign-in and sessions, CSRF, escaping, buttons per role and rule,
throttled guessing, and two app instances (two serve processes) over one database."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from tests.console.conftest import PASSWORD, csrf_of, sign_in

XSS = "<script>alert(1)</script>"


def approve_form(client, kind: str, ref: str, reason: str, csrf: str | None, **extra):
    data = {"reason": reason, **extra}
    if csrf is not None:
        data["csrf"] = csrf
    return client.post(f"/{kind}/{ref}/approve", data=data, follow_redirects=False)


def test_sign_in_cookie_and_sign_out(console):
    c = console.client()
    assert c.get("/queue", follow_redirects=False).headers["location"] == "/login?next=/queue"
    r = sign_in(c, "bob")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie  # plain http
    page = c.get("/queue")
    assert page.status_code == 200 and "bob" in page.text and "reviewer" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert c.post("/logout", data={"csrf": csrf_of(page.text)}, follow_redirects=False).status_code == 303
    assert c.get("/queue", follow_redirects=False).status_code == 303  # the session ended
    # a session cookie kept after signing out is refused too (the row is gone, not just the cookie)
    secret = cookie.split(";")[0].split("=", 1)[1]
    c.cookies.set("registry_session", secret)
    assert c.get("/queue", follow_redirects=False).status_code == 303


def test_sign_in_with_token_and_wrong_secrets(console):
    c = console.client()
    form = c.get("/login")
    r = c.post(
        "/login", data={"csrf": csrf_of(form.text), "token": console.tokens["victor"]}, follow_redirects=False
    )
    assert r.status_code == 303
    assert "victor" in c.get("/").text
    c2 = console.client()
    assert sign_in(c2, "bob", "wrong password!").status_code == 401
    assert sign_in(c2, "nobody", PASSWORD).status_code == 401
    # the sign-in form's own CSRF token: a post without it does nothing
    r = c2.post("/login", data={"name": "bob", "password": PASSWORD}, follow_redirects=False)
    assert r.status_code == 403 and "registry_session" not in r.headers.get("set-cookie", "")


def test_secure_cookie_over_tls(console):
    c = console.client(base_url="https://testserver")
    cookie = sign_in(c, "bob").headers["set-cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    # behind a proxy that ends TLS and does not forward the scheme
    # (the test client speaks plain http here, so it would not send such a cookie back)
    c = console.client(secure_cookies=True)
    assert "Secure" in c.get("/login").headers["set-cookie"]


def test_every_form_needs_the_session_csrf_token(console):
    bob, carol = console.client(), console.client()
    sign_in(bob, "bob")
    sign_in(carol, "carol")
    carols = csrf_of(carol.get("/queue").text)
    for token in (None, "", "0" * 64, carols):  # missing, empty, made up, another session's
        assert approve_form(bob, "vectors", "helpful@v1", "ok", token).status_code == 403
        r = bob.post(
            "/recipes/mix@v1/alias", data={"alias": "staging", "csrf": token or ""}, follow_redirects=False
        )
        assert r.status_code == 403
        r = bob.post("/logout", data={"csrf": token or ""}, follow_redirects=False)
        assert r.status_code == 403
    assert console.reg.vector("helpful").status == "draft" and console.reg.aliases() == []
    assert bob.get("/queue", follow_redirects=False).status_code == 200  # still signed in
    # and every form on the pages carries it
    for path in ("/queue", "/vectors/helpful@v1", "/recipes/mix@v1"):
        html = bob.get(path).text
        assert html.count("<form") - html.count('method="get"') == html.count('name="csrf"'), path


def test_reason_and_names_are_escaped(console):
    c = console.client()
    sign_in(c, "bob")
    csrf = csrf_of(c.get("/queue").text)
    r = approve_form(c, "vectors", "helpful@v1", XSS, csrf)
    assert r.status_code == 303 and r.headers["location"] == "/vectors/helpful@v1?ok=approved"
    assert console.reg.vector("helpful").status_reason == XSS  # stored as given
    for path in ("/vectors/helpful@v1", "/audit", "/audit?actor=bob"):
        html = c.get(path).text
        assert XSS not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    # text reflected from the query string is escaped too
    html = c.get("/", params={"q": '"><img src=x onerror=alert(1)>'}).text
    assert "<img src=x" not in html and "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html


def test_buttons_follow_role_and_four_eyes(console):
    viewer, alice, bob = console.client(), console.client(), console.client()
    for client, name in ((viewer, "victor"), (alice, "alice"), (bob, "bob")):
        sign_in(client, name)
    for path in ("/queue", "/vectors/helpful@v1", "/recipes/mix@v1"):
        html = viewer.get(path).text
        assert 'class="approve"' not in html and 'class="deprecate"' not in html, path
    # alice created everything: no approve button under four-eyes, but she may deprecate
    html = alice.get("/vectors/helpful@v1").text
    assert 'class="approve"' not in html and 'class="deprecate"' in html and 'id="four-eyes"' in html
    assert 'class="approve"' not in alice.get("/queue").text
    html = bob.get("/vectors/helpful@v1").text
    assert 'class="approve"' in html and 'id="four-eyes"' not in html
    assert bob.get("/queue").text.count('class="approve"') == 3  # two vectors, one recipe
    # the rule is the governance code's, not the page's: alice's forged post is refused and audited
    r = approve_form(alice, "vectors", "helpful@v1", "mine", csrf_of(alice.get("/queue").text))
    assert r.status_code == 409 and "four-eyes rule: alice created vector helpful@v1" in r.text
    assert console.reg.vector("helpful").status == "draft"
    assert [e.actor for e in console.reg.log("helpful@v1") if e.action == "refused.vector.approved"] == [
        "alice"
    ]
    # a viewer's forged post: 403
    r = approve_form(viewer, "vectors", "helpful@v1", "ok", csrf_of(viewer.get("/queue").text))
    assert r.status_code == 403


def test_failed_sign_ins_are_slowed(console, monkeypatch):
    import asyncio
    import types

    import pytest

    from registry.console import pages
    from registry.db.models import SignInFailure

    waits: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds: float) -> None:  # records the wait the server chose, and waits it
        waits.append(seconds)
        await real_sleep(seconds)

    monkeypatch.setattr(pages, "asyncio", types.SimpleNamespace(sleep=sleep))
    c = console.client(throttle=0.1)
    for _ in range(5):
        assert sign_in(c, "bob", "not the password").status_code == 401
    assert waits == pytest.approx([0.1, 0.2], abs=0.03)  # three free attempts, then doubling
    with console.reg.Session() as s:
        rows = {f.key: f.count for f in s.scalars(select(SignInFailure))}
    assert rows == {"ip:testclient": 5, "name:bob": 5}
    # another process counts the same attempts; a success then clears them
    assert sign_in(console.client(throttle=0.1), "bob").status_code == 303
    assert waits == pytest.approx([0.1, 0.2, 0.4], abs=0.03)
    with console.reg.Session() as s:
        assert list(s.scalars(select(SignInFailure))) == []


def test_sign_in_wait_doubles_up_to_thirty_seconds():
    from registry.console.sessions import delay_for

    assert [delay_for(n, 1.0) for n in (0, 2, 3, 4, 5, 20)] == [0.0, 0.0, 1.0, 2.0, 4.0, 30.0]


def test_secrets_are_stored_only_as_hashes_and_never_shown(console):
    from registry.db.models import Account

    with console.reg.Session() as s:
        rows = {a.name: a for a in s.scalars(select(Account))}
    for name, token in console.tokens.items():
        assert rows[name].token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert (
            rows[name].password_hash.startswith("scrypt$16384$8$1$")
            and PASSWORD not in rows[name].password_hash
        )
        assert len(token) == 4 + 43  # rgt_ + 32 random bytes in base64url
    c = console.client()
    form = c.get("/login")
    c.post("/login", data={"csrf": csrf_of(form.text), "token": console.tokens["bob"]})
    for path in ("/", "/queue", "/audit", "/vectors/helpful@v1", "/recipes/mix@v1"):
        assert console.tokens["bob"] not in c.get(path).text
    assert not any(console.tokens["bob"] in str(e.details) for e in console.reg.log())


def test_two_serve_processes_over_one_database(console):
    a, b = console.client(), console.client()  # separate apps, each with its own registry and engine
    assert a.app.state.registry is not b.app.state.registry
    r = sign_in(a, "bob")
    b.cookies.set("registry_session", r.cookies["registry_session"])
    html = b.get("/queue").text  # the session made by A is valid at B
    assert "bob" in html
    csrf = csrf_of(html)
    assert approve_form(b, "vectors", "helpful@v1", "via B", csrf).status_code == 303
    page = a.get("/vectors/helpful@v1").text  # A shows B's write at once
    assert "approved" in page and "via B" in page
    assert a.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert b.get("/queue", follow_redirects=False).status_code == 303  # signed out everywhere


def test_pages_show_catalogue_recipe_diff_and_lineage(console):
    reg = console.reg
    reg.actor = "alice"
    reg.add_recipe(
        {
            "name": "mix",
            "base": "tiny",
            "terms": [{"vector": "helpful", "weight": 1.0}, {"vector": "harmless", "weight": 0.25}],
        }
    )
    c = console.client()
    sign_in(c, "victor")
    html = c.get("/").text
    for ref in ("helpful", "harmless", "mix", "tiny"):
        assert ref in html
    assert reg.vector("helpful").digest[:12] in html
    html = c.get("/", params={"q": "harm", "kind": "vectors"}).text
    assert "harmless" in html and ">helpful<" not in html
    assert "no vectors" in c.get("/", params={"status": "approved", "kind": "vectors"}).text
    html = c.get("/recipes/mix@v2").text  # diff against v1 by default
    assert (
        '<span class="ddel">-  weight: 0.5</span>' in html
        and '<span class="dadd">+  weight: 0.25</span>' in html
    )
    html = c.get("/lineage/mix@v2").text
    assert html.count('class="node node-vector"') == 2 and html.count('class="node node-recipe"') == 1
    assert c.get("/vectors/nope@v1").status_code == 404
    html = c.get("/vectors/harmless@v1").text
    assert 'id="heatmap"' in html and "helpful@v1" in html
    cos = reg.vector("harmless").interference["cosines"]["helpful@v1"]["global"]
    assert f"{cos:.3f}" in html


def test_audit_log_filters(console):
    from datetime import UTC, datetime, timedelta

    c = console.client()
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "eval ok"}, headers=console.auth("bob"))
    assert r.status_code == 200
    sign_in(c, "victor")

    def rows(**params) -> list[tuple[str, str, str]]:
        html = c.get("/audit", params=params).text
        body = html[html.index('<table id="audit">') :]
        cells = [line for line in body.split("<tr>")[2:] if "<td>" in line]
        return [tuple(x.split("</td>")[0] for x in line.split("<td>")[2:5]) for line in cells]

    assert rows(actor="bob") == [("bob", "vector.approved", "helpful@v1")]
    assert {o for _, _, o in rows(object="helpful")} == {"helpful@v1"}
    assert "vector.approved" in {a for _, a, _ in rows(object="helpful")}
    assert all(a.startswith("account.") for _, a, _ in rows(action="account."))
    assert len(rows(action="account.")) == 8  # four accounts added, four passwords set
    today = datetime.now(UTC).date()
    assert rows(actor="bob", since=str(today), until=str(today)) == [("bob", "vector.approved", "helpful@v1")]
    assert rows(actor="bob", until=str(today - timedelta(days=1))) == []
    assert rows(actor="bob", since=str(today + timedelta(days=1))) == []
    api = c.get(
        "/api/v1/audit",
        params={"actor": "bob", "since": f"{today}T00:00:00Z"},
        headers=console.auth("victor"),
    )
    assert [(e["actor"], e["object"]) for e in api.json()["items"]] == [("bob", "helpful@v1")]
