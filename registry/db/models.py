"""Database schema (SQLAlchemy 2 declarative). Alembic migrations in migrations/ mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar = {dict[str, Any]: JSON, list[Any]: JSON}


class Meta(Base):
    """Key/value facts about this registry (its id, which the store must carry too)."""

    __tablename__ = "registry_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RegistryIdentity(Base):
    """Which registry this database holds and the store it uses, so a second home joins it."""

    __tablename__ = "registry_identity"
    registry_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str | None] = mapped_column(Text)  # resolved store URL; None until first recorded
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str | None] = mapped_column(String(128))


class TeamPolicySetting(Base):
    """One key of the team policy (registry.db.policy says which keys exist)."""

    __tablename__ = "team_policy"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    set_by: Mapped[str] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BaseModel(Base):
    __tablename__ = "base_models"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(Text)
    revision: Mapped[str | None] = mapped_column(String(128))
    # the Hub commit `revision` resolved to when the base was added (None: a local folder)
    revision_sha: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(Text)
    architecture: Mapped[str] = mapped_column(String(128))
    model_type: Mapped[str | None] = mapped_column(String(64))
    dtype: Mapped[str] = mapped_column(String(16))
    param_count: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    files: Mapped[list[BaseFile]] = relationship(
        back_populates="base", cascade="all, delete-orphan", order_by="BaseFile.filename"
    )


class BaseFile(Base):
    __tablename__ = "base_files"
    id: Mapped[int] = mapped_column(primary_key=True)
    base_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    base: Mapped[BaseModel] = relationship(back_populates="files")
    __table_args__ = (UniqueConstraint("base_id", "filename"),)


class BaseLocation(Base):
    """Where one host keeps a base's files: each host writes only its own row."""

    __tablename__ = "base_locations"
    id: Mapped[int] = mapped_column(primary_key=True)
    base_id: Mapped[int] = mapped_column(ForeignKey("base_models.id", ondelete="CASCADE"), index=True)
    host: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(Text)
    located_by: Mapped[str] = mapped_column(String(128))
    located_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("base_id", "host"),)


class TrainingRun(Base):
    """Lineage of a vector: an import is a run too (its sources and their digests)."""

    __tablename__ = "training_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # import | dpo
    base_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    vector_name: Mapped[str] = mapped_column(String(128))
    plugin: Mapped[str | None] = mapped_column(String(128))
    plugin_version: Mapped[str | None] = mapped_column(String(64))
    dataset_digest: Mapped[str | None] = mapped_column(String(64))
    dataset_size: Mapped[int | None]
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int | None]
    sources: Mapped[dict[str, Any]] = mapped_column(default=dict)
    library_versions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]  # refreshed while running; gc ends stale runs of any host


class RunPair(Base):
    """A preference pair the pinned base generated for a run (kept, or dropped and why)."""

    __tablename__ = "run_pairs"
    __table_args__ = (UniqueConstraint("run_id", "position"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("training_runs.id"), index=True)
    position: Mapped[int]
    prompt: Mapped[str] = mapped_column(Text)
    chosen: Mapped[str] = mapped_column(Text)
    rejected: Mapped[str] = mapped_column(Text)
    contrast: Mapped[int | None]  # which of the plugin's instruction pairs produced it
    kept: Mapped[bool]
    dropped_because: Mapped[str | None] = mapped_column(String(64))


class Vector(Base):
    __tablename__ = "vectors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    base_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"), index=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("training_runs.id"))
    store_key: Mapped[str] = mapped_column(String(64), unique=True)
    digest: Mapped[str] = mapped_column(String(64))
    param_count: Mapped[int] = mapped_column(BigInteger)
    norm: Mapped[float] = mapped_column(Float)
    stored_bytes: Mapped[int] = mapped_column(BigInteger)
    rank: Mapped[int | None]  # low-rank form: its tensors' largest factor rank; None when dense
    status: Mapped[str] = mapped_column(String(16), default="draft")
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_actor: Mapped[str | None] = mapped_column(String(128))
    status_at: Mapped[datetime | None]
    interference: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    # who imported it from a bundle (created_by is then the source's creator); four-eyes refuses both
    imported_by: Mapped[str | None] = mapped_column(String(128), default=None)
    description: Mapped[str | None] = mapped_column(Text, default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)  # hidden; NAME@vN resolves
    archived_by: Mapped[str | None] = mapped_column(String(128), default=None)
    collected_at: Mapped[datetime | None] = mapped_column(default=None)  # gc removed its store data
    base: Mapped[BaseModel] = relationship()
    run: Mapped[TrainingRun | None] = relationship()
    tags: Mapped[list[VectorTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="VectorTag.key"
    )
    tensors: Mapped[list[VectorTensor]] = relationship(
        back_populates="vector", cascade="all, delete-orphan", order_by="VectorTensor.name"
    )
    __table_args__ = (UniqueConstraint("base_id", "name", "version"),)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


class VectorTensor(Base):
    __tablename__ = "vector_tensors"
    id: Mapped[int] = mapped_column(primary_key=True)
    vector_id: Mapped[int] = mapped_column(ForeignKey("vectors.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(512))
    shape: Mapped[list[Any]] = mapped_column()
    source_dtype: Mapped[str] = mapped_column(String(16))
    norm: Mapped[float] = mapped_column(Float)
    sha256: Mapped[str] = mapped_column(String(64))  # of φ's float32 bytes (expanded when low-rank)
    factors: Mapped[dict[str, Any] | None]  # low-rank form: {"rank", "sha256": {lora_A, lora_B}}
    vector: Mapped[Vector] = relationship(back_populates="tensors")


class Recipe(Base):
    __tablename__ = "recipes"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[int]
    base_id: Mapped[int] = mapped_column(ForeignKey("base_models.id"))
    method: Mapped[str] = mapped_column(String(32))
    dtype: Mapped[str] = mapped_column(String(16))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    content_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="draft")
    status_reason: Mapped[str | None] = mapped_column(Text)
    status_actor: Mapped[str | None] = mapped_column(String(128))
    status_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))
    imported_by: Mapped[str | None] = mapped_column(String(128), default=None)  # as Vector's
    description: Mapped[str | None] = mapped_column(Text, default=None)
    archived_at: Mapped[datetime | None] = mapped_column(default=None)  # as Vector's
    archived_by: Mapped[str | None] = mapped_column(String(128), default=None)
    base: Mapped[BaseModel] = relationship()
    tags: Mapped[list[RecipeTag]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="RecipeTag.key"
    )
    terms: Mapped[list[RecipeTerm]] = relationship(
        back_populates="recipe", cascade="all, delete-orphan", order_by="RecipeTerm.position"
    )
    __table_args__ = (UniqueConstraint("name", "version"),)

    @property
    def ref(self) -> str:
        return f"{self.name}@v{self.version}"


class RecipeTerm(Base):
    __tablename__ = "recipe_terms"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id", ondelete="CASCADE"), index=True)
    position: Mapped[int]
    vector_id: Mapped[int] = mapped_column(ForeignKey("vectors.id"))
    weight: Mapped[float] = mapped_column(Float)
    recipe: Mapped[Recipe] = relationship(back_populates="terms")
    vector: Mapped[Vector] = relationship()


class VectorTag(Base):
    """One key=value tag of a vector version (`registry tag --vector`)."""

    __tablename__ = "vector_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    vector_id: Mapped[int] = mapped_column(ForeignKey("vectors.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[str] = mapped_column(String(256))
    set_by: Mapped[str | None] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("vector_id", "key"),)


class RecipeTag(Base):
    """One key=value tag of a recipe version (`registry tag`)."""

    __tablename__ = "recipe_tags"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(64), index=True)
    value: Mapped[str] = mapped_column(String(256))
    set_by: Mapped[str | None] = mapped_column(String(128))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    __table_args__ = (UniqueConstraint("recipe_id", "key"),)


class Alias(Base):
    __tablename__ = "recipe_aliases"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_name: Mapped[str] = mapped_column(String(128))
    alias: Mapped[str] = mapped_column(String(128))
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    recipe: Mapped[Recipe] = relationship()
    __table_args__ = (UniqueConstraint("recipe_name", "alias"),)


class Materialization(Base):
    __tablename__ = "materializations"
    id: Mapped[int] = mapped_column(primary_key=True)
    recipe_id: Mapped[int] = mapped_column(ForeignKey("recipes.id"), index=True)
    out_path: Mapped[str] = mapped_column(Text)
    output_digest: Mapped[str] = mapped_column(String(64))
    inputs_digest: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seconds: Mapped[float] = mapped_column(Float)
    reused_from_id: Mapped[int | None] = mapped_column(ForeignKey("materializations.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # set when a later materialization wrote the same folder: lineage no longer lists it
    replaced_at: Mapped[datetime | None] = mapped_column(default=None)
    recipe: Mapped[Recipe] = relationship()


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(512), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # how `actor` was established: os / db-login (the authenticated account itself), or
    # declared / console, with the authenticated account beside it (NULL: before 0004)
    actor_source: Mapped[str | None] = mapped_column(String(16), default=None)
    authenticated_as: Mapped[str | None] = mapped_column(String(128), default=None)


class Signature(Base):
    """A signed approval: the statement (digests + status) and its OpenSSF model-signing bundle."""

    __tablename__ = "signatures"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # recipe | vector
    object_id: Mapped[int] = mapped_column(index=True)
    key_id: Mapped[str] = mapped_column(String(64))
    statement: Mapped[dict[str, Any]] = mapped_column(default=dict)
    bundle: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrustedKey(Base):
    """A public key whose signatures let an imported approval stay approved."""

    __tablename__ = "trusted_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    pem: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class Account(Base):
    """A console / REST account: a role, an API token and an optional password, both only hashed."""

    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # viewer | reviewer | admin
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of a 256-bit token
    password_hash: Mapped[str | None] = mapped_column(Text)  # scrypt$n$r$p$salt$hash
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str | None] = mapped_column(String(128))


class ConsoleSession(Base):
    """A signed-in browser: the cookie holds a random secret, the row only its sha256."""

    __tablename__ = "console_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class SignInFailure(Base):
    """Failed sign-ins per client address, shared by every serve process to slow guessing down."""

    __tablename__ = "sign_in_failures"
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    count: Mapped[int]
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class RevokedKey(Base):
    """A key taken out of trust (`registry trust remove`): its signatures no longer count.

    Its row moves here from trusted_keys, so a client that predates revocation (or a schema
    downgraded below 0008, which keeps this table) does not trust it either."""

    __tablename__ = "revoked_keys"
    id: Mapped[int] = mapped_column(primary_key=True)
    key_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    pem: Mapped[str] = mapped_column(Text)
    added_by: Mapped[str] = mapped_column(String(128))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[str] = mapped_column(String(128))
    revoked_at: Mapped[datetime] = mapped_column(default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)


class Evaluation(Base):
    """A recorded behaviour evaluation of one vector or recipe digest (registry.records.evaluations)."""

    __tablename__ = "evaluations"
    id: Mapped[int] = mapped_column(primary_key=True)
    subject_kind: Mapped[str] = mapped_column(String(16))  # vector | recipe
    subject_ref: Mapped[str] = mapped_column(String(160))
    subject_digest: Mapped[str] = mapped_column(String(64))
    base_name: Mapped[str] = mapped_column(String(128))
    base_digest: Mapped[str] = mapped_column(String(64))
    evaluators: Mapped[dict[str, Any]] = mapped_column()
    prompts_digest: Mapped[str] = mapped_column(String(64))
    prompts_source: Mapped[str] = mapped_column(Text)
    seed: Mapped[int]
    decoding: Mapped[dict[str, Any]] = mapped_column()
    grid: Mapped[dict[str, Any]] = mapped_column()
    points: Mapped[list[Any]] = mapped_column()
    library_versions: Mapped[dict[str, Any]] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)  # fixed terms, method, retention…
    seconds: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_by: Mapped[str | None] = mapped_column(String(128), default=None)
    # the trusted key that signed an imported record in its bundle (None: local, or unsigned)
    signed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    digest: Mapped[str] = mapped_column(String(64))
    __table_args__ = (Index("ix_evaluations_subject", "subject_kind", "subject_digest"),)
