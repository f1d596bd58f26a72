"""Signed approvals and releases through OpenSSF model signing (key-based, works offline).

An approval is signed as a *statement*: what was approved, by digest (a recipe's content
digest and its vectors' digests, or a vector's digest) and the status. model-signing signs
folders, so the statement is written as one canonical JSON file in a scratch folder and
that folder is signed; the signature (a Sigstore bundle, JSON) is stored in the database
and carried by bundles. Verifying rebuilds the statement from the data *as it is here* and
checks the signature against the registry's trusted public keys, so neither a flipped
status nor an edited digest can pass. A materialized folder is signed the same way, with
the signature written beside it, so deployers can check it with the stock
`model_signing verify key` command and no registry at all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from registry.db.models import RevokedKey, Signature, TrustedKey
from registry.errors import AlreadyExists, NotTrusted
from registry.governance.authority import require_admin

if TYPE_CHECKING:
    from registry.core import Core
    from registry.db.models import Recipe, Vector

STATEMENT = "approval.json"
SIGNATURE_SUFFIX = ".sig"


def statement(kind: str, name: str, version: int, digest: str, status: str, **more: Any) -> dict[str, Any]:
    """What an approval signature covers (digests recomputed from data, never copied)."""
    return {
        "type": "preference-registry/approval/v1",
        "kind": kind,
        "name": name,
        "version": version,
        "digest": digest,
        "status": status,
        **more,
    }


def recipe_statement(r: Recipe, status: str) -> dict[str, Any]:
    vectors = [{"ref": t.vector.ref, "digest": t.vector.digest} for t in r.terms]
    return statement("recipe", r.name, r.version, r.content_digest, status, vectors=vectors)


def vector_statement(v: Vector, status: str) -> dict[str, Any]:
    # the base by digest, not only by name: another base of the same name must not verify
    return statement(
        "vector", v.name, v.version, v.digest, status, base=v.base.name, base_digest=v.base.digest
    )


def _quiet() -> None:
    logging.getLogger("model_signing").setLevel(logging.WARNING)


def public_pem(key_path: str | Path) -> bytes:
    """The PEM public key of a private or public key file (the trusted form)."""
    from cryptography.hazmat.primitives import serialization

    raw = Path(key_path).read_bytes()
    try:
        if b"PRIVATE KEY" in raw:
            key = serialization.load_pem_private_key(raw, password=None).public_key()
        else:
            key = serialization.load_pem_public_key(raw)
    except (ValueError, TypeError) as e:
        raise NotTrusted(f"{key_path}: not a PEM elliptic-curve key ({e})") from None
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_id(pem: bytes) -> str:
    """A key's id: sha256 of its PEM public key."""
    return hashlib.sha256(pem.strip()).hexdigest()


def _statement_folder(scratch: Path, statement: dict[str, Any]) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="statement-", dir=scratch))
    text = json.dumps(statement, sort_keys=True, separators=(",", ":"))
    (folder / STATEMENT).write_text(text)
    return folder


def sign_statement(core: Core, statement: dict[str, Any], private_key: str | Path) -> tuple[str, str]:
    """Sign a statement with an elliptic-curve private key; returns (signature JSON, key id)."""
    from model_signing import signing

    _quiet()
    kid = key_id(public_pem(private_key))
    folder = _statement_folder(core.scratch(), statement)
    try:
        sig = folder.with_suffix(SIGNATURE_SUFFIX)
        try:
            signing.Config().use_elliptic_key_signer(private_key=str(private_key)).sign(folder, sig)
        except Exception as e:
            raise NotTrusted(f"cannot sign with {private_key}: {e}") from None
        text = sig.read_text()
        sig.unlink()
        return text, kid
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def verify_statement(core: Core, statement: dict[str, Any], signature: str, pem: str) -> bool:
    """True when `signature` signs exactly `statement` with the key `pem`."""
    from model_signing import verifying

    _quiet()
    folder = _statement_folder(core.scratch(), statement)
    sig, pub = folder.with_suffix(SIGNATURE_SUFFIX), folder.with_suffix(".pub")
    try:
        sig.write_text(signature)
        pub.write_text(pem)
        verifying.Config().use_elliptic_key_verifier(public_key=str(pub)).verify(folder, sig)
        return True
    except Exception:  # a bad signature, a wrong key or a malformed bundle: not verified
        return False
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        sig.unlink(missing_ok=True)
        pub.unlink(missing_ok=True)


def verified_by_trusted(
    core: Core, statement: dict[str, Any], signatures: list[dict[str, Any]]
) -> str | None:
    """The id of a trusted key whose signature verifies the statement, else None."""
    keys = {k.key_id: k.pem for k in list_trusted(core)}
    for sig in signatures:
        pem = keys.get(sig.get("key_id", ""))
        if (
            pem
            and isinstance(sig.get("bundle"), str)
            and verify_statement(core, statement, sig["bundle"], pem)
        ):
            return sig["key_id"]
    return None


def record_signature(
    core: Core, s, kind: str, object_id: int, kid: str, statement: dict, bundle: str
) -> None:
    s.add(
        Signature(
            kind=kind, object_id=object_id, key_id=kid, statement=statement, bundle=bundle, actor=core.actor
        )
    )


def signed_by(s, kind: str, object_id: int, kid: str) -> bool:
    """Whether the object already carries a signature by key `kid` (inside a transaction)."""
    q = select(Signature.id).where(
        Signature.kind == kind, Signature.object_id == object_id, Signature.key_id == kid
    )
    return s.scalar(q.limit(1)) is not None


def signatures_of(core: Core, kind: str, object_id: int) -> list[dict[str, Any]]:
    with core.Session() as s:
        rows = s.scalars(select(Signature).where(Signature.kind == kind, Signature.object_id == object_id))
        return [{"key_id": r.key_id, "bundle": r.bundle, "statement": r.statement} for r in rows]


# -- trusted keys --------------------------------------------------------------------------
def add_trusted(core: Core, key_path: str | Path, name: str | None = None) -> TrustedKey:
    """Trust a public key (a private key file is accepted; only its public half is kept).

    A policy admin's act: a trusted key turns a bundle's signed approvals into approvals here.
    """
    pem = public_pem(key_path).decode()
    kid = key_id(pem.encode())
    require_admin(core, "trust.add", f"key:{kid[:16]}", "trust a signing key")

    def write() -> TrustedKey:
        with core.Session.begin() as s:
            if s.scalar(select(TrustedKey).where(TrustedKey.key_id == kid)) is not None:
                raise AlreadyExists(f"key {kid[:16]} is already trusted")
            revoked = s.scalar(select(RevokedKey).where(RevokedKey.key_id == kid))
            if revoked is not None:
                raise NotTrusted(
                    f"key {kid[:16]} was revoked by {revoked.revoked_by} on {revoked.revoked_at:%Y-%m-%d}; "
                    "a revoked key is never trusted again (make a new key pair)"
                )
            row = TrustedKey(key_id=kid, name=name or Path(key_path).stem, pem=pem, added_by=core.actor)
            s.add(row)
            core.audit(s, "trust.add", f"key:{kid[:16]}", {"name": row.name, "key_id": kid})
            return row

    return core.write(write)


def list_trusted(core: Core) -> list[TrustedKey]:
    with core.Session() as s:
        return list(s.scalars(select(TrustedKey).order_by(TrustedKey.added_at)))


# -- released folders ----------------------------------------------------------------------
def sign_folder(folder: Path, private_key: str | Path) -> Path:
    """Sign a materialized folder; the signature goes beside it as FOLDER.sig."""
    from model_signing import signing

    _quiet()
    sig = folder.with_name(folder.name + SIGNATURE_SUFFIX)
    try:
        signing.Config().use_elliptic_key_signer(private_key=str(private_key)).sign(folder, sig)
    except Exception as e:
        sig.unlink(missing_ok=True)
        raise NotTrusted(f"cannot sign {folder} with {private_key}: {e}") from None
    return sig
