"""Full-page screenshot of one vector's (or recipe's) console page, evaluations included.

    python benchmarks/console_screenshot.py --home DIR --ref verbose --out docs/console/vector-evaluation.png

Serves the registry at DIR on a free localhost port (uvicorn in a thread), signs in through the
sign-in form in headless Chromium as the browser test does, opens /vectors/REF (or
/recipes/REF with --recipe), checks the page has its evaluation plots and sample answers, and
saves a full-page PNG. Signing in: an API token from the environment variable named by
--token-env (default REGISTRY_TOKEN) when set; else a throwaway viewer account made for the
shot and removed after it (an admin act: the OS user must be a policy admin of DIR).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sys
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from registry import Registry
from registry.console.accounts import add_user, remove_user
from registry.console.app import create_app

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shoot(url: str, path: str, token: str, out: Path, width: int, require_evidence: bool) -> dict[str, int]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(f"{url}/login?next={path}")
            page.fill("input[name=token]", token)
            page.click("#signin-token")
            page.wait_for_load_state("load")
            if "/login" in page.url:
                raise SystemExit("sign-in failed: " + page.inner_text("main")[:200])
            page.goto(url + path)
            if page.locator("h1").count() == 0 or "/login" in page.url:
                raise SystemExit(f"could not open {path}")
            found = {
                "plots": page.locator("#evaluations svg.evplot").count(),
                "answers": page.locator("#evaluations table.samples td.answer").count(),
            }
            if require_evidence and not (found["plots"] and found["answers"]):
                raise SystemExit(
                    f"{path} shows no recorded evaluation (plots {found['plots']}, answers {found['answers']})"
                )
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            return found
        finally:
            browser.close()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", type=Path, required=True, help="registry home (holds registry.toml)")
    ap.add_argument("--ref", required=True, help="vector (or recipe, with --recipe) reference")
    ap.add_argument("--recipe", action="store_true", help="REF is a recipe")
    ap.add_argument("--base", default="", help="base of a vector name that exists for several bases")
    ap.add_argument("--out", type=Path, required=True, help="PNG to write")
    ap.add_argument("--width", type=int, default=1280, help="window width in px (the docs use 1280)")
    ap.add_argument(
        "--token-env", default="REGISTRY_TOKEN", help="variable holding an API token to sign in with"
    )
    ap.add_argument("--allow-empty", action="store_true", help="shoot even if the page has no evaluation")
    args = ap.parse_args(argv)

    reg = Registry.open(args.home)
    token, temp = os.environ.get(args.token_env, ""), None
    if not token:
        temp = f"screenshot-{secrets.token_hex(4)}"
        token = add_user(reg, temp, "viewer")[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(reg), host="127.0.0.1", port=free_port(), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise SystemExit("the console did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{server.config.port}"
        path = f"/{'recipes' if args.recipe else 'vectors'}/{args.ref}" + (
            f"?base={args.base}" if args.base else ""
        )
        found = shoot(url, path, token, args.out, args.width, not args.allow_empty)
        print(
            f"{args.out}: {path}, {found['plots']} plots, {found['answers']} sample answers", file=sys.stderr
        )
    finally:
        server.should_exit = True
        thread.join(10)
        if temp:
            remove_user(reg, temp)
        reg.close()


if __name__ == "__main__":
    main()
