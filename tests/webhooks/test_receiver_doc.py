"""The receiver example in docs/deployment.md, run: it accepts real deliveries by their
signature, acts once per event id, and answers 401 to a forged body."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from http.server import HTTPServer
from pathlib import Path

import pytest

from registry.governance.policy import set_policy
from registry.webhooks.delivery import Settings, deliver_due, sign
from tests.webhooks.conftest import SECRET

DOC = Path(__file__).resolve().parents[2] / "docs" / "deployment.md"


def doc_receiver() -> str:
    """The first python block of the webhooks section."""
    section = DOC.read_text().split("## 7. Webhooks", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_documented_receiver_verifies_real_deliveries(loaded, monkeypatch):
    monkeypatch.setenv("DEPLOY_HOOK_SECRET", SECRET)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    ns: dict = {"__name__": "receiver_doc"}
    exec(compile(doc_receiver(), str(DOC), "exec"), ns)
    deployed: list[str] = []
    ns["deploy"] = deployed.append
    server = HTTPServer(("127.0.0.1", 0), ns["Hook"])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        set_policy(loaded, "webhook_allow_private", True)
        loaded.add_webhook("deploy", url, events=["alias.moved"], secret_env="HOOK_SECRET")
        loaded.add_webhook("unsigned", url, events=["alias.moved"])
        loaded.add_recipe(
            {"name": "helpful-safe", "base": "tiny", "terms": [{"vector": "helpful", "weight": 1.0}]}
        )
        loaded.set_alias("helpful-safe@v1", "prod", force=True)
        summary = deliver_due(loaded, Settings(timeout=10, backoff=0))
        by_hook = {a["webhook"]: a for a in summary["attempts"]}
        assert by_hook["deploy"]["status_code"] == 204  # signature verified by the doc's code
        assert by_hook["unsigned"]["status_code"] == 401  # no signature: refused
        assert deployed == ["helpful-safe@v1"]
        [d] = loaded.webhook_deliveries("deploy")
        loaded.redeliver(d["id"])  # the same event id again: acknowledged, not acted on twice
        assert deployed == ["helpful-safe@v1"]

        body = json.dumps(
            {"id": "x", "type": "alias.moved", "payload": {"alias": "helpful-safe@prod", "to": "evil@v9"}}
        )
        forged = urllib.request.Request(url, data=body.encode(), method="POST",
                                        headers={"X-Hub-Signature-256": sign("wrong secret", body.encode())})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(forged, timeout=10)
        assert e.value.code == 401 and deployed == ["helpful-safe@v1"]
        assert ns["verify"](SECRET.encode(), body.encode(), sign(SECRET, body.encode()))
    finally:
        server.shutdown()
        server.server_close()
