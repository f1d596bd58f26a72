"""`registry user add|list|remove|passwd` and `registry serve`: tokens shown once, only hashes kept."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request


def test_user_commands(cli, home):
    from registry import Registry
    from registry.console.accounts import by_token

    assert cli("init")[0] == 0
    code, out, _ = cli("user", "add", "alice", "--role", "reviewer")
    assert code == 0 and "shown only now" in out
    token = out.strip().splitlines()[-1]
    assert token.startswith("rgt_") and len(token) == 47
    code, out, _ = cli("--json", "user", "add", "victor", "--role", "viewer")
    data = json.loads(out)
    assert data["name"] == "victor" and data["role"] == "viewer" and data["token"].startswith("rgt_")
    assert data["token"] != token
    code, out, err = cli("user", "add", "alice", "--role", "admin")
    assert code == 1 and err.strip().splitlines() == ["Error: account alice already exists"]
    code, out, err = cli("user", "add", "x/y", "--role", "admin")
    assert code == 1 and "invalid account name" in err
    code, out, err = cli("user", "add", "zed", "--role", "root")
    assert code == 2 and "root" in err
    rows = json.loads(cli("--json", "user", "list")[1])
    assert [(r["name"], r["role"], r["password"]) for r in rows] == [
        ("alice", "reviewer", False),
        ("victor", "viewer", False),
    ]
    assert token not in cli("--json", "user", "list")[1]
    reg = Registry.open(home)
    assert by_token(reg, token).name == "alice" and by_token(reg, token + "x") is None
    reg.close()


def test_passwd_and_remove(home):
    from click.testing import CliRunner

    from registry import Registry
    from registry.cli import main
    from registry.console.accounts import by_password, by_token
    from registry.db.models import Account

    run = CliRunner().invoke
    assert run(main, ["init"]).exit_code == 0
    token = json.loads(run(main, ["--json", "user", "add", "bob", "--role", "admin"]).stdout)["token"]
    short = run(main, ["user", "passwd", "bob", "--password-stdin"], input="tiny\n")
    assert short.exit_code == 1 and "password too short" in short.stderr
    done = run(main, ["user", "passwd", "bob"], input="a long passphrase\na long passphrase\n")
    assert done.exit_code == 0 and "a long passphrase" not in done.stdout
    reg = Registry.open(home)
    with reg.Session() as s:
        row = s.query(Account).one()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert row.password_hash.startswith("scrypt$") and "passphrase" not in row.password_hash
    assert by_password(reg, "bob", "a long passphrase").role == "admin"
    assert by_password(reg, "bob", "a long passphrasf") is None
    assert run(main, ["user", "remove", "bob"]).exit_code == 0
    assert by_token(reg, token) is None
    gone = run(main, ["user", "remove", "bob"])
    assert gone.exit_code == 1 and gone.stderr.strip() == "Error: account not found: bob"
    assert [e.action for e in reg.log() if e.object == "account:bob"] == [
        "account.add", "account.password", "account.remove",
    ]  # fmt: skip
    reg.close()


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _post(url: str, token: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_two_serve_processes_over_one_database(reg, models, home):
    """Two `registry serve` processes over one database (SQLite file or PostgreSQL server)."""
    from registry.console.accounts import add_user

    reg.add_base("tiny", str(models["base"]))
    reg.import_vector("helpful", "tiny", models["plus"])
    token = add_user(reg, "bob", "reviewer")[1]
    ports = [_port(), _port()]
    env = {**os.environ, "REGISTRY_HOME": str(home)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "registry.cli", "serve", "--port", str(p)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for p in ports
    ]
    try:
        for p, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 120
            while True:
                assert proc.poll() is None, proc.stdout.read()
                try:
                    if _get(f"http://127.0.0.1:{p}/api/v1/me")[0] == 401:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.3)
        a, b = (f"http://127.0.0.1:{p}/api/v1" for p in ports)
        assert _get(f"{a}/vectors/helpful@v1", token)[1]["status"] == "draft"
        assert _post(f"{b}/vectors/helpful@v1/approve", token, {"reason": "via B"})[0] == 200
        shown = _get(f"{a}/vectors/helpful@v1", token)[1]
        assert (shown["status"], shown["status_actor"], shown["status_reason"]) == (
            "approved",
            "bob",
            "via B",
        )
        code, body = _post(f"{a}/vectors/helpful@v1/approve", token, {"reason": "again"})
        assert code == 409 and body == {"error": "vector helpful@v1 is approved; it cannot become approved"}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
    out = "".join(proc.stdout.read() for proc in procs)
    assert token not in out and "via B" not in out  # no token and no request text in the server's output


def test_serve_binds_localhost_by_default():
    from registry.cli.serve import serve

    defaults = {p.name: p.default for p in serve.params}
    assert (defaults["host"], defaults["port"]) == ("127.0.0.1", 8765)
