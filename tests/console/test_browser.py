"""The console in headless Chromium (Debian's package, driven by Playwright's Python API):
a reviewer approves a draft with a reason and sees it approved; a viewer sees no approve
button; the creator cannot approve under four-eyes; a script in a reason stays text."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from tests.console.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
XSS = "<script>alert(1)</script>"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="Chromium is not installed at /usr/bin/chromium (apt-get install chromium chromium-driver; .ci/run does it)",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(console):
    """`registry serve`'s app under uvicorn on a free port, in a thread."""
    import uvicorn

    from registry import Registry
    from registry.console.app import create_app

    reg = Registry.open(console.home)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(reg), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    reg.close()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


def signed_in(browser, url: str, name: str):
    page = browser.new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    page.goto(f"{url}/queue")  # redirected to the sign-in form
    assert "/login" in page.url
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("#signin-password")
    page.wait_for_url(f"{url}/queue")
    assert name in page.inner_text("#whoami")
    return page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_review_in_a_real_browser(served, browser, console):
    url = served
    # a reviewer opens a draft from the queue, approves it with a reason, and sees it approved
    bob = signed_in(browser, url, "bob")
    bob.click("#queue-vectors >> text=helpful@v1")
    bob.wait_for_url("**/vectors/helpful@v1**")
    assert bob.inner_text("h1 .status") == "draft"
    form = bob.locator("form.decision:has(button.approve)")
    form.locator("input[name=reason]").fill(XSS)
    form.locator("button.approve").click()
    bob.wait_for_url("**ok=approved**")
    assert bob.inner_text("h1 .status") == "approved"
    assert bob.inner_text("#ok") == "helpful@v1 is now approved."
    # the reason is shown as text, and no script ran
    assert bob.inner_text("#decision .reason") == XSS
    assert bob.locator("#decision script").count() == 0 and bob.dialogs == []
    bob.goto(f"{url}/audit?actor=bob")
    assert XSS in bob.inner_text("#audit") and bob.dialogs == []
    assert console.reg.vector("helpful@v1").status_actor == "bob"

    # a viewer sees no approve (or deprecate) button anywhere
    victor = signed_in(browser, url, "victor")
    assert victor.locator("button.approve").count() == 0
    victor.goto(f"{url}/vectors/harmless@v1")
    assert victor.locator("button.approve").count() == 0 and victor.locator("button.deprecate").count() == 0

    # the creator sees no approve button on her own draft, and a forged post is refused (409)
    alice = signed_in(browser, url, "alice")
    assert alice.locator("#queue-vectors button.approve").count() == 0
    assert "another reviewer approves" in alice.inner_text("#queue-vectors")
    alice.goto(f"{url}/vectors/harmless@v1")
    assert alice.locator("button.approve").count() == 0
    assert "Four-eyes rule" in alice.inner_text("#four-eyes")
    csrf = alice.locator("form.decision input[name=csrf]").first.get_attribute("value")
    r = alice.request.post(f"{url}/vectors/harmless@v1/approve", form={"csrf": csrf, "reason": "mine"})
    assert r.status == 409 and "four-eyes rule: alice created vector harmless@v1" in r.text()
    assert console.reg.vector("harmless@v1").status == "draft"

    # and the reviewer still may approve it
    bob.goto(f"{url}/queue")
    row = bob.locator("#queue-vectors tr:has-text('harmless@v1')")
    row.locator("form:has(button.approve) input[name=reason]").fill("second pair of eyes")
    row.locator("button.approve").click()
    bob.wait_for_url("**/queue?ok=approved&done=harmless@v1")
    assert bob.inner_text("#ok") == "harmless@v1 is now approved."  # the queue confirms it
    assert bob.locator("#queue-vectors tr:has-text('harmless@v1')").count() == 0
    assert console.reg.vector("harmless@v1").status == "approved"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_audit_log_fits_1280_px_and_its_times_stay_on_one_line(served, browser, console, tmp_path):
    from registry.testing.factors import random_factors

    reg = console.reg  # an event with long details: a nested report, a long path, digests
    reg.import_low_rank("lr", "tiny", random_factors(reg.base("tiny").path, 2, seed=1))
    reg.add_recipe({"name": "solo", "base": "tiny", "terms": [{"vector": "lr", "weight": 1.0}]})
    reg.materialize_adapter("solo", tmp_path / ("deployments-" * 8) / "adapter")
    page = signed_in(browser, served, "victor")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.goto(f"{served}/audit")
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    lines = page.evaluate(
        """() => [...document.querySelectorAll('#audit tbody td:first-child')].map(td => {
            const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; })"""
    )
    assert len(lines) > 10 and set(lines) == {1}
    assert "'svd_rank'" not in page.inner_text("#audit") and '"svd_rank": null' in page.inner_text("#audit")
