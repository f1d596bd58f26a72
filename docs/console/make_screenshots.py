"""Screenshots of the review console for docs/console.md, taken in headless Chromium.

    .venv/bin/python docs/console/make_screenshots.py [--out docs/console]

Builds a small registry from tiny local models (real imports, so the interference cosines are
real), serves it with uvicorn, signs in as a reviewer and captures the catalogue, a vector page,
the review queue (after approving a draft from it: the confirmation shows) and the audit log,
each at a 1280 px wide window.
"""

from __future__ import annotations

import argparse
import os
import socket
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from registry import Registry
from registry.console.accounts import add_user, set_password
from registry.console.app import create_app
from registry.governance.policy import set_policy
from registry.testing.tiny_model import build_tiny_llama, perturbed_copy

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def build(root: Path) -> Registry:
    base = build_tiny_llama(root / "base", seed=0)
    variants = {
        n: perturbed_copy(base, root / n, seed=s)
        for n, s in (("a", 1), ("b", 2), ("c", 3), ("d", 4), ("e", 5))
    }
    os.environ.pop("REGISTRY_ACTOR", None)
    with Registry.init(root / "home") as owner:  # the OS user: the registry's policy admin
        set_policy(owner, "allow_declared_actor", True)  # a one-machine demo: names stand for people
        set_policy(owner, "four_eyes", True)
        home = owner.home
    reg = Registry.open(home, actor="alice")
    reg.add_base("tiny-llama", str(base))
    reg.import_vector("helpful", "tiny-llama", variants["a"])
    reg.import_vector("harmless", "tiny-llama", variants["c"], variants["b"])
    reg.import_vector("concise", "tiny-llama", variants["d"])
    reg.import_vector("helpful", "tiny-llama", variants["b"])
    reg.import_vector("polite", "tiny-llama", variants["e"])
    reg.add_recipe({"name": "helpful-safe", "base": "tiny-llama",
                    "terms": [{"vector": "helpful@v1", "weight": 1.0}, {"vector": "harmless", "weight": 0.5}]})  # fmt: skip
    reg.add_recipe({"name": "helpful-safe", "base": "tiny-llama",
                    "terms": [{"vector": "helpful@v1", "weight": 1.0}, {"vector": "harmless", "weight": 0.35}]})  # fmt: skip
    reg.add_recipe({"name": "polite-helpful", "base": "tiny-llama",
                    "terms": [{"vector": "polite", "weight": 0.8}, {"vector": "helpful@v2", "weight": 0.6}]})  # fmt: skip
    bob = Registry.open(reg.home, actor="bob")
    bob.approve("helpful@v1", "DPO eval 2026-11: +4.1 win rate, retention drift 0.6 %", kind="vector")
    bob.approve("harmless@v1", "red-team suite passed", kind="vector")
    bob.approve("helpful-safe@v1", "both terms approved; card reviewed")
    bob.set_alias("helpful-safe@v1", "prod")
    bob.deprecate("concise@v1", "<script>alert(1)</script> shows as text", kind="vector")
    bob.materialize("helpful-safe@prod", root / "out" / "helpful-safe")
    bob.materialize_adapter("helpful-safe@prod", root / "out" / "helpful-safe-lora", rank=8)
    with Registry.open(reg.home) as owner:  # accounts are a policy admin's act
        for name, role in (("bob", "reviewer"), ("alice", "reviewer")):
            add_user(owner, name, role)
            set_password(owner, name, "demo password 1")
    return reg


def shoot(page, url: str | None, out: Path) -> None:
    if url:
        page.goto(url)
    width = page.evaluate("document.documentElement.scrollWidth")
    if width > 1280:
        raise SystemExit(f"{page.url} is {width} px wide: the console must fit 1280 px")
    page.screenshot(path=str(out), full_page=True)
    print(out, f"({width} px wide)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        reg = build(Path(tmp))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(reg), host="127.0.0.1", port=port, log_level="warning")
        )
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(f"{url}/login")
            page.fill("input[name=name]", "bob")
            page.fill("input[name=password]", "demo password 1")
            page.click("#signin-password")
            page.wait_for_url(f"{url}/")
            for name, path in (("catalogue", "/"), ("vector", "/vectors/helpful@v2")):
                shoot(page, url + path, args.out / f"{name}.png")
            page.goto(f"{url}/queue")  # approve a draft from the queue: the page confirms it
            row = page.locator("#queue-vectors tr:has-text('polite@v1')")
            row.locator("input[name=reason]").fill("eval 2026-12: tone up, no retention drift")
            row.locator("button.approve").click()
            page.wait_for_url("**/queue?ok=approved**")
            shoot(page, None, args.out / "queue.png")
            shoot(page, f"{url}/audit", args.out / "audit.png")
            browser.close()
        server.should_exit = True
        reg.close()


if __name__ == "__main__":
    main()
