"""Trust chain III (issue 31), the console and server side: the console's identity cannot be
claimed by a library caller (4), parallel sign-in guesses are throttled like sequential ones
(11), hostile lock files in output folders neither hang, bloat nor break the recipe page (12),
request bodies are capped and authenticated before they are read (13), and huge integers in
parameters are a one-line 4xx (17). Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import os
import re
import secrets

import httpx
import pytest

from tests.console.conftest import PASSWORD, csrf_of, sign_in
from tests.console.test_api import one_line_error

MIB = 1 << 20
HUGE = "99999999999999999999"  # beyond int64: what a SQL driver cannot bind


def asgi_client(console, **app_options) -> httpx.AsyncClient:
    """An async client over a fresh app: requests run concurrently and bodies stream lazily."""
    from registry import Registry
    from registry.console.app import create_app

    opened = Registry.open(console.home)
    console.opened.append(opened)
    transport = httpx.ASGITransport(app=create_app(opened, **app_options))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


class Stream:
    """A request body of `chunks` MiB, produced lazily, counting how much the server pulled."""

    def __init__(self, chunks: int):
        self.chunks, self.pulled = chunks, 0

    async def __aiter__(self):
        block = b"a" * MIB
        for _ in range(self.chunks):
            self.pulled += 1
            yield block


# -- finding 4: the console's identity is not a keyword -------------------------------------------
def test_console_identity_cannot_be_claimed_by_a_library_caller(console, monkeypatch):
    """Alice (a reviewer, the creator of `helpful`) opened the registry as bob with
    `actor_source="console"` and approved her own vector under four-eyes; now only a grant
    carrying a live credential of the account acts for it."""
    from registry import Registry
    from registry.errors import IdentityRefused
    from registry.governance.policy import set_policy

    with Registry.open(console.home, actor="tester") as admin:
        set_policy(admin, "allow_declared_actor", False)
    monkeypatch.delenv("REGISTRY_ACTOR")  # a real team's policy: everyone acts as their login
    os_user = console.reg.identity.authenticated_as
    with pytest.raises(IdentityRefused, match="reserved for the review console"):
        Registry.open(console.home, actor="bob", actor_source="console")
    with pytest.raises(IdentityRefused, match="reserved for the review console"):
        Registry.open(console.home, actor_source="console")
    from registry.db.console_grant import ConsoleGrant

    forged = [
        ConsoleGrant("token", "rgt_" + secrets.token_urlsafe(32)),  # made up
        ConsoleGrant("token", console.tokens["bob"][:-2] + "xx"),  # almost bob's
        ConsoleGrant("session", secrets.token_urlsafe(32)),  # a session that never was
        ConsoleGrant("password", PASSWORD),  # not a kind of grant
    ]
    for grant in forged:
        with pytest.raises(IdentityRefused):
            Registry.open(console.home, console=grant)
    assert console.reg.vector("helpful").status == "draft"
    assert forged[0].secret not in repr(forged[0])  # a grant never prints its credential

    # the credential bob's request carried: the console acts as bob, recorded as such
    with Registry.open(console.home, console=ConsoleGrant("token", console.tokens["bob"])) as bob:
        assert (bob.actor, bob.identity.source, bob.identity.authenticated_as) == ("bob", "console", os_user)
        with pytest.raises(IdentityRefused, match="reserved for the review console"):
            bob.declare_actor("carol", "console")  # a grant for bob is not one for carol
    c = console.client()
    cookie = sign_in(c, "alice").cookies["registry_session"]
    with Registry.open(console.home, console=ConsoleGrant("session", cookie)) as alice:
        assert alice.actor == "alice" and alice.identity.source == "console"
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "ok"}, headers=console.auth("bob"))
    assert r.status_code == 200
    event = [e for e in console.reg.log("helpful@v1") if e.action == "vector.approved"][-1]
    assert (event.actor, event.actor_source, event.authenticated_as) == ("bob", "console", os_user)
    # signing out or removing the account ends what its credential proves
    c.post("/logout", data={"csrf": csrf_of(c.get("/queue").text)})
    with pytest.raises(IdentityRefused):
        Registry.open(console.home, console=ConsoleGrant("session", cookie))


# -- finding 11: parallel guesses ------------------------------------------------------------------
def test_parallel_sign_in_guesses_are_throttled(console, monkeypatch):
    """Forty guesses sent at once were all checked at once (each read the count before any was
    recorded, and counted after its wait); now each attempt takes the next slot of the back-off
    before it waits, so the n-th check of an account comes no sooner than a sequential guesser's
    would, and attempts beyond the longest wait are refused at once (429), unchecked."""
    import time

    from sqlalchemy import select

    from registry.console import pages, sessions
    from registry.db.models import SignInFailure

    base = 0.1  # the first wait; doubling up to 30 × base, also the longest an attempt may queue
    checks: list[float] = []  # when each password check began
    reserved: list[float] = []  # when each attempt began to reserve its slot (counted or refused)
    real_check, real_reserve = pages.by_password, getattr(sessions, "reserve", None)  # (new)

    def by_password(*args):
        checks.append(time.monotonic())
        return real_check(*args)

    def reserve(*args):
        reserved.append(time.monotonic())
        return real_reserve(*args)

    monkeypatch.setattr(pages, "by_password", by_password)
    monkeypatch.setattr(sessions, "reserve", reserve, raising=False)

    async def attack() -> list[httpx.Response]:
        async with asgi_client(console, throttle=base) as c:
            form = await c.get("/login")
            token = csrf_of(form.text)
            # the form's cookie as sent: each failure sets a fresh one the guesses ignore
            cookie = {"Cookie": f"registry_signin={form.cookies['registry_signin']}"}

            async def guess(i: int) -> httpx.Response:
                data = {"csrf": token, "name": "bob", "password": f"guess number {i:02d}", "next": "/"}
                return await c.post("/login", data=data, headers=cookie)

            return await asyncio.gather(*(guess(i) for i in range(40)))

    t0 = time.monotonic()
    answers = asyncio.run(attack())
    elapsed = time.monotonic() - t0
    codes = [r.status_code for r in answers]
    assert set(codes) == {401, 429} and len(checks) == codes.count(401), codes

    # the schedule a sequential guesser meets: three free attempts, then waits of base·2^k;
    # the i-th check (0-based) comes at least the sum of the waits before it after the first
    # attempt reached the server (not after the first check: a loaded machine delays that one)
    def earliest(i: int) -> float:
        return sum(base * 2 ** (j - 3) for j in range(3, i + 1))

    checks.sort()
    first = min(reserved)
    for i, t in enumerate(checks):
        assert t - first >= earliest(i) - 0.02, (i, [round(x - first, 3) for x in checks])
    fits = max(i for i in range(40) if earliest(i) <= elapsed + 30 * base) + 1
    assert 4 <= len(checks) <= fits < 15, (len(checks), fits, elapsed)
    refused = [r for r in answers if r.status_code == 429]
    assert all("too many sign-in attempts" in r.text and int(r.headers["retry-after"]) >= 1 for r in refused)
    assert all("registry_session" not in r.headers.get("set-cookie", "") for r in answers)
    with console.reg.Session() as s:
        counts = {f.key: f.count for f in s.scalars(select(SignInFailure))}
    assert counts == {"ip:127.0.0.1": len(checks), "name:bob": len(checks)}  # refusals are not counted


# -- finding 12: hostile lock files ------------------------------------------------------------------
@contextlib.contextmanager
def address_space_limited(extra: int):
    """This process may map at most `extra` more bytes meanwhile (a runaway read raises MemoryError)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (vm + extra, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def test_hostile_lock_files_neither_hang_nor_break_the_recipe_page(console, tmp_path):
    """The output folder belongs to whoever materialized: a FIFO as its lock hung the page
    (and after 40 views the server), a link to /dev/zero grew it without bound, deeply nested
    JSON gave a 500. Each is now a state on the page, answered at once."""
    outs = {}
    for kind in ("fifo", "zero", "nested", "large", "good", "dir"):
        outs[kind] = tmp_path / kind
        console.reg.materialize("mix@v1", outs[kind], reuse=False)
    good_digest = json.loads((outs["good"] / "registry-lock.json").read_text())["output_digest"]
    locks = {k: p / "registry-lock.json" for k, p in outs.items()}
    for lock in locks.values():
        if lock.parent.name != "good":
            lock.unlink()
    os.mkfifo(locks["fifo"])
    locks["zero"].symlink_to("/dev/zero")
    depth = 200_000
    locks["nested"].write_text("[" * depth + "]" * depth)
    locks["large"].write_text('{"output_digest": "' + "0" * (2 * MIB) + '"}')
    locks["dir"].mkdir()

    c = console.client()
    sign_in(c, "victor")
    pool = concurrent.futures.ThreadPoolExecutor(1)
    with address_space_limited(1 << 30):  # reading /dev/zero whole fails here, not the machine
        pending = pool.submit(c.get, "/recipes/mix@v1")
        try:
            r = pending.result(timeout=60)
        except concurrent.futures.TimeoutError:
            pytest.fail("the recipe page hung on a hostile lock file")
        finally:  # a reader blocked on the FIFO (old code) is released by a writer
            if not pending.done():
                os.close(os.open(locks["fifo"], os.O_WRONLY | os.O_NONBLOCK))
            pool.shutdown(wait=True)
    assert r.status_code == 200, r.text[-500:]
    cells = dict(re.findall(r"<td><code>([^<]+)</code></td><td>.*?</td>\s*<td>([^<]+)", r.text))
    states = {k: cells[str(p)].strip().rstrip(" —") for k, p in outs.items()}
    assert states == {
        "fifo": "not a regular file",
        "zero": "not a regular file",
        "nested": "unreadable",
        "large": "too large to show",
        "good": "present",
        "dir": "not a regular file",
    }
    assert good_digest[:12] in r.text and "matches" in r.text


# -- finding 13: request bodies ------------------------------------------------------------------------
def test_request_bodies_are_capped_and_authenticated_before_reading(console):
    """A 300 MiB body without credentials used to be buffered whole before the 401, and a
    1 GiB upload to /login spooled to /tmp; now the server pulls at most its cap (64 KiB) and
    nothing at all before authenticating."""

    async def attack() -> list[tuple[str, int, int, int]]:
        out = []
        async with asgi_client(console) as c:
            form = await c.get("/login")
            signin = {"Cookie": f"registry_signin={form.cookies['registry_signin']}"}
            cases = [
                # (label, path, headers, more headers, MiB streamed, declared length)
                ("api, no token", "/api/v1/vectors/helpful@v1/approve", {}, {}, 64, None),
                ("api, bad token", "/api/v1/vectors/helpful@v1/approve",
                 {"Authorization": "Bearer rgt_" + "A" * 43}, {}, 64, None),
                ("api, bob, streamed", "/api/v1/vectors/helpful@v1/approve", console.auth("bob"), {}, 64, None),
                ("api, bob, declared 1 GiB", "/api/v1/recipes/mix@v1/alias", console.auth("bob"), {}, 64, 1 << 30),
                ("login, declared 1 GiB", "/login", {"Content-Type": "multipart/form-data; boundary=x"},
                 signin, 64, 1 << 30),
                ("login, streamed", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                 signin, 64, None),
                ("page, no session", "/vectors/helpful@v1/approve", {}, {}, 64, None),
                ("logout, no session", "/logout", {}, {}, 64, None),
            ]  # fmt: skip
            for label, path, headers, more, mib, declared in cases:
                body = Stream(mib)
                headers = {**headers, **more}
                if declared is not None:
                    headers["Content-Length"] = str(declared)
                r = await c.post(path, content=body, headers=headers)
                out.append((label, r.status_code, body.pulled, len(r.content)))
                if path.startswith("/api/"):
                    one_line_error(r, r.status_code)
        return out

    got = {label: (status, pulled) for label, status, pulled, _ in asyncio.run(attack())}
    assert got == {
        "api, no token": (401, 0),
        "api, bad token": (401, 0),
        "api, bob, streamed": (413, 1),  # the first MiB crosses the cap: nothing more is pulled
        "api, bob, declared 1 GiB": (413, 0),
        "login, declared 1 GiB": (413, 0),
        "login, streamed": (413, 1),
        "page, no session": (303, 0),
        "logout, no session": (303, 0),
    }
    assert console.reg.vector("helpful").status == "draft" and console.reg.aliases() == []
    # ordinary requests still work
    c = console.client()
    assert sign_in(c, "bob").status_code == 303
    r = c.post("/api/v1/vectors/helpful@v1/approve", json={"reason": "x" * 2000}, headers=console.auth("bob"))
    assert r.status_code == 200


# -- finding 17: huge integers -------------------------------------------------------------------------
def test_huge_integers_in_parameters_are_a_one_line_4xx(console):
    """`?page=99999999999999999999`, `v@v9999…` and `/runs/9999…` gave a plain-text 500 (the
    database driver cannot bind the number); now a 4xx whose body is one line of JSON (API) or
    the error page (pages)."""
    c = console.client()
    h = console.auth("victor")
    api = [
        f"/api/v1/vectors?page={HUGE}",
        f"/api/v1/vectors?size={HUGE}",
        f"/api/v1/recipes?page={HUGE}",
        f"/api/v1/runs?page={HUGE}",
        f"/api/v1/audit?page={HUGE}",
        f"/api/v1/vectors/helpful@v{HUGE}",
        f"/api/v1/recipes/mix@v{HUGE}",
        f"/api/v1/runs/{HUGE}",
        f"/api/v1/runs/-{HUGE}",
        "/api/v1/runs/2147483648",
        f"/api/v1/vectors/helpful@v{HUGE}?base=tiny",
    ]
    for path in api:
        r = c.get(path, headers=h)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        one_line_error(r, r.status_code)
    for path in (f"/api/v1/vectors/helpful@v{HUGE}/approve", f"/api/v1/recipes/mix@v{HUGE}/approve"):
        r = c.post(path, json={"reason": "ok"}, headers=console.auth("bob"))
        assert 400 <= r.status_code < 500, (path, r.status_code)
        one_line_error(r, r.status_code)
    # the largest version a database integer holds is an ordinary "not found"
    one_line_error(c.get("/api/v1/vectors/helpful@v2147483647", headers=h), 404)
    sign_in(c, "victor")
    pages = [
        f"/?page_no={HUGE}",
        f"/queue?page_no={HUGE}",
        f"/audit?page_no={HUGE}",
        f"/vectors/helpful@v{HUGE}",
        f"/recipes/mix@v{HUGE}",
        f"/lineage/mix@v{HUGE}",
    ]
    for path in pages:
        r = c.get(path)
        assert 400 <= r.status_code < 500, (path, r.status_code, r.text[:200])
        assert r.headers["content-type"].startswith("text/html") and "<main" in r.text, path
